package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// sentAt records a message of the customer's as sent at a given time.
func sentAt(t *testing.T, f *fixture, workflowID string, step int, at time.Time) {
	t.Helper()
	ctx := context.Background()
	key := activities.IdempotencyKey(workflowID, step, recoup.ChannelEmail)
	if _, claimed, err := f.st.ReserveSend(ctx, postgres.Reservation{Key: key, WorkflowID: workflowID, Step: step, Channel: "email",
		CustomerID: "cus_1", InvoiceID: "inv_1"}); err != nil || !claimed {
		t.Fatalf("reserve %s: %v", key, err)
	}
	if err := f.st.CompleteSend(ctx, key, postgres.SendSent, "sg-"+key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Pool().Exec(ctx, `UPDATE sends SET created_at = $2, updated_at = $2 WHERE idempotency_key = $1`, key, at); err != nil {
		t.Fatal(err)
	}
}

// The shipped schedule (days 0, 3, 7, 14) with the shipped cap (2 messages per 7 days) sends
// at every step, whether the earlier messages went out a moment or hours (quiet hours) after
// they were due, and however quickly the worker ran the later step: the cap's window is
// counted from when the step was due, in whole days. A message of another run inside the
// window still caps the step.
func TestShippedScheduleSendsAtEveryStepUnderTheContactCap(t *testing.T) {
	t0 := time.Date(2026, 11, 3, 3, 0, 0, 0, time.UTC) // 22:00 in New York
	for _, tc := range []struct {
		name  string
		delay time.Duration // from a step's due time to its message
	}{
		{"sent sub-second after due", 900 * time.Millisecond},
		{"sent after quiet hours", 11*time.Hour + 900*time.Millisecond}, // 09:00 in New York
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			pol := f.acts.Prompts().Policy
			for i, day := range pol.ScheduleDays {
				step := i + 1
				due := t0.AddDate(0, 0, day)
				in := decideInput(f, t)
				in.Step, in.ScheduledAt, in.Now = step, due, due.Add(100*time.Millisecond) // decided sooner after due than the earlier message went out
				d, err := f.acts.DecideStrategy(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				if d.Channel == recoup.ChannelNone || strings.Contains(d.Rationale, "contact cap") {
					t.Fatalf("step %d (day %d) sends nothing: %s", step, day, d.Rationale)
				}
				sentAt(t, f, wfID, step, due.Add(tc.delay))
			}
		})
	}
	t.Run("another run's message inside the window caps the step", func(t *testing.T) {
		f := newFixture(t)
		sentAt(t, f, wfID, 2, t0.AddDate(0, 0, 3).Add(time.Second))
		sentAt(t, f, "dunning-inv_other", 1, t0.AddDate(0, 0, 5))
		in := decideInput(f, t)
		in.Step, in.ScheduledAt, in.Now = 3, t0.AddDate(0, 0, 7), t0.AddDate(0, 0, 7).Add(time.Second)
		d, err := f.acts.DecideStrategy(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Channel != recoup.ChannelNone || !strings.Contains(d.Rationale, "contact cap: 2 messages") {
			t.Fatalf("decision = %+v, want nothing sent because of the contact cap", d)
		}
	})
}
