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
	bad := o
	bad.RunID, bad.Outcome = "run-3", "vanished"
	if _, err := st.RecordRunOutcome(ctx, bad); err == nil {
		t.Fatal("an unknown outcome was recorded")
	}
}
