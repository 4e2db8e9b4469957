package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// The shipped schedule (days 0, 3, 7, 14) and cap (2 per 7 days) agree: every step can send
// with every earlier step sent, however late quiet hours pushed the earlier messages (under a
// day), because the window is counted in whole days from when the step was due.
func TestContactCapCountsWholeDaysFromTheDueTime(t *testing.T) {
	p := defaultPolicy(t)
	c := p.ContactCap
	t0 := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	sent := func(day int, late time.Duration) time.Time { return t0.AddDate(0, 0, day).Add(late) }
	count := func(dueDay int, msgs ...time.Time) int {
		from := c.CountFrom(t0.AddDate(0, 0, dueDay))
		n := 0
		for _, m := range msgs {
			if !m.Before(from) {
				n++
			}
		}
		return n
	}
	// Step 1 went out 13 h late (quiet hours), step 2 500 ms late.
	m1, m2 := sent(0, 13*time.Hour), sent(3, 500*time.Millisecond)
	if n := count(7, m1, m2); n >= c.Messages {
		t.Fatalf("step 3 (day 7) counts %d messages, want under %d: the day-0 message must not count", n, c.Messages)
	}
	m3 := sent(7, 11*time.Hour)
	if n := count(14, m1, m2, m3); n >= c.Messages {
		t.Fatalf("step 4 (day 14) counts %d messages", n)
	}
	// A message of another run within the days before does count.
	if n := count(7, m1, m2, sent(5, 0)); n != 2 {
		t.Fatalf("step 3 with another run's day-5 message counts %d, want 2 (capped)", n)
	}
	if len(c.ScheduleConflicts(p.ScheduleDays)) != 0 {
		t.Fatalf("the shipped schedule conflicts with the shipped cap: %v", c.ScheduleConflicts(p.ScheduleDays))
	}
}

// A schedule in which some step could never send under the cap is a lint error naming the
// step.
func TestPolicyLintRefusesAScheduleTheCapForbids(t *testing.T) {
	for _, tc := range []struct {
		days []int
		cap  policy.ContactCap
		want []string
	}{
		{[]int{0, 3, 7, 14}, policy.ContactCap{Messages: 2, Days: 7}, nil},
		{[]int{0, 3, 6, 14}, policy.ContactCap{Messages: 2, Days: 7}, []string{"step 3 (day 6) could never send: the steps of days 0, 3"}},
		{[]int{0, 3, 7, 14}, policy.ContactCap{Messages: 1, Days: 7}, []string{"step 2 (day 3)", "step 3 (day 7)"}},
		{[]int{0, 1, 2, 3}, policy.ContactCap{Messages: 3, Days: 7}, []string{"step 4 (day 3)"}},
		{[]int{0, 1, 2, 3}, policy.ContactCap{Messages: 1, Days: 1}, nil},
	} {
		errs := tc.cap.ScheduleConflicts(tc.days)
		got := errors.Join(errs...)
		if len(errs) != len(tc.want) {
			t.Errorf("%v with %+v: %v, want %d errors", tc.days, tc.cap, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("%v with %+v: error %q, want it to contain %q", tc.days, tc.cap, errs[i], w)
			}
		}
	}
	_, err := policy.Parse(mutated(t, func(m map[string]any) { m["schedule_days"] = []int{0, 3, 6, 14} }))
	if err == nil || !strings.Contains(err.Error(), "contact_cap: step 3 (day 6) could never send") {
		t.Fatalf("Parse = %v, want the conflict named", err)
	}
}
