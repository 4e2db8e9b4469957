package report_test

import (
	"context"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
)

// A Temporal reset terminates the run it replaces (closedruns records it in run_outcomes as
// 'terminated' by "history-resetter": "the workflow goes on in a new run") and the dunning
// run goes on. The report takes any non-completed close of the invoice after an open run's
// start as its loss, so a reset run still dunning at its window's end is counted lost, like a
// canceled subscription.
func TestAResetRunThatGoesOnIsNotLost(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	f.run("reset", "", "", 0, 0) // still open
	f.exec(`INSERT INTO run_outcomes (workflow_id, run_id, invoice_id, outcome, recorded_status, closed_by, reason, closed_at)
		VALUES ('reset', 'run-1', 'inv_reset', 'terminated', 'waiting', 'history-resetter',
		        'reset: bad deploy (the workflow goes on in a new run)', $1)`, since.Add(2*d))
	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Lost {
		t.Errorf("a reset run that goes on: %+v; want one run, not lost", runs)
	}
}
