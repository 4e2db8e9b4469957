package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// A closed run's true outcome is recorded once per Temporal run; an outcome run_outcomes
// does not know is refused.
func TestRunOutcomeIsRecordedOncePerRun(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	closed := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	o := postgres.RunOutcome{WorkflowID: "dunning-inv_o", RunID: "run-1", InvoiceID: "inv_o", Outcome: "terminated",
		RecordedStatus: "paused", ClosedBy: "webui", Reason: "cleanup", ClosedAt: closed}
	if ok, err := st.RecordRunOutcome(ctx, o); err != nil || !ok {
		t.Fatalf("first record: %v, %v", ok, err)
	}
	again := o
	again.Outcome, again.Reason = "timed_out", "later"
	if ok, err := st.RecordRunOutcome(ctx, again); err != nil || ok {
		t.Fatalf("second record: %v, %v; want nothing recorded", ok, err)
	}
	got, ok, err := st.FindRunOutcome(ctx, "dunning-inv_o", "run-1")
	if err != nil || !ok || got.Outcome != "terminated" || got.RecordedStatus != "paused" || got.ClosedBy != "webui" || !got.ClosedAt.Equal(closed) {
		t.Fatalf("found %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := st.FindRunOutcome(ctx, "dunning-inv_o", "run-2"); err != nil || ok {
		t.Fatalf("another run of the workflow: %v, %v; want none", ok, err)
	}
	// Recorded with the run's first run id, the invoice's open episode started as that run
	// closes at the close time (FinishRun never ran).
	if _, err := st.Pool().Exec(ctx, `INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_at, run_id)
		VALUES ('inv_o2', 1, 'dunning-inv_o2', 'open', $1, 'first-run')`, closed.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	other := postgres.RunOutcome{WorkflowID: "dunning-inv_o2", RunID: "run-9", InvoiceID: "inv_o2", Outcome: "timed_out",
		RecordedStatus: "active", ClosedAt: closed, FirstRunID: "first-run"}
	if _, err := st.RecordRunOutcome(ctx, other); err != nil {
		t.Fatal(err)
	}
	var status string
	var at time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT status, closed_at FROM invoice_runs WHERE invoice_id = 'inv_o2'`).Scan(&status, &at); err != nil || status != "closed" || !at.Equal(closed) {
		t.Fatalf("episode %s at %v (%v), want closed at %v", status, at, err, closed)
	}
	bad := o
	bad.RunID, bad.Outcome = "run-3", "vanished"
	if _, err := st.RecordRunOutcome(ctx, bad); err == nil {
		t.Fatal("an unknown outcome was recorded")
	}
}
