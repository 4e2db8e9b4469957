package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/spike"
	"github.com/recoup-dunning/recoup/workflows"
)

type detectorWorld struct {
	env      *testsuite.TestWorkflowEnvironment
	recorded []spike.Event
}

func newDetector(t *testing.T) *detectorWorld {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflowWithOptions(workflows.SpikeDetectorWorkflow, workflow.RegisterOptions{Name: recoup.DetectorWorkflowType})
	env.RegisterActivity(&activities.Activities{})
	w := &detectorWorld{env: env}
	cfg := spike.DefaultConfig()
	cfg.Warmup = 10 * time.Minute
	env.OnActivity(a.SpikeConfig, mock.Anything).Return(cfg, nil)
	env.OnActivity(a.RecordIncidents, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.IncidentsInput) (activities.IncidentsResult, error) {
			w.recorded = append(w.recorded, in.Events...)
			return activities.IncidentsResult{Released: 3}, nil
		})
	return w
}

// feed signals one failure of the BIN every interval from start for n failures.
func (w *detectorWorld) feed(start, interval time.Duration, n int, bin string) {
	for i := range n {
		d := start + time.Duration(i)*interval
		w.env.RegisterDelayedCallback(func() {
			w.env.SignalWorkflow(recoup.SignalFailures, []spike.Record{{At: t0.Add(d), BIN: bin, Code: "card_declined", Gateway: "stripe"}})
		}, d)
	}
}

func (w *detectorWorld) kinds() []string {
	var out []string
	for _, e := range w.recorded {
		out = append(out, e.Kind+" "+e.Incident.Cohort+" "+e.Incident.Status)
	}
	return out
}

// Steady failures, then a burst from one BIN: the detector records one incident for the
// BIN, an operator's release is recorded (and releases the held runs), and once the burst
// is over the incident clears. The history is bounded by continue-as-new, which carries the
// state.
func TestDetectorWorkflowFlagsReleasesAndClears(t *testing.T) {
	w := newDetector(t)
	w.feed(0, 20*time.Second, 90, "424242")                         // 3 a minute for 30 minutes
	w.feed(30*time.Minute, 2*time.Second, 30, "411111")             // a burst: 30 in a minute
	w.feed(30*time.Minute+time.Second, 20*time.Second, 9, "424242") // the background goes on
	var incidentID string
	var status workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryIncidents)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&status); err != nil {
			t.Error(err)
		}
		for _, in := range status.Incidents {
			incidentID = in.ID
		}
		w.env.UpdateWorkflow(recoup.UpdateIncident, "upd-1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("release rejected: %v", err) },
			OnAccept:   func() {},
			OnComplete: func(any, error) {},
		}, recoup.IncidentAction{IncidentID: incidentID, Action: "release", By: "ops", Note: "gateway confirmed"})
		w.env.UpdateWorkflow(recoup.UpdateIncident, "upd-2", &testsuite.TestUpdateCallback{
			OnReject:   func(error) {},
			OnAccept:   func() { t.Error("an action on an unknown incident was accepted") },
			OnComplete: func(any, error) {},
		}, recoup.IncidentAction{IncidentID: "inc-nope", Action: "release"})
	}, 33*time.Minute)
	w.env.SetDetachedChildWait(false)
	w.env.ExecuteWorkflow(workflows.SpikeDetectorWorkflow, workflows.DetectorInput{MaxHistory: 400})
	var can *workflow.ContinueAsNewError
	if err := w.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new once its history grew", err)
	}
	if len(status.Incidents) != 1 || status.Incidents[0].Cohort != "bin=411111" || status.Records < 100 {
		t.Fatalf("query at 33m: %+v", status)
	}
	want := []string{"opened bin=411111 open", "release bin=411111 released", "cleared bin=411111 cleared"}
	got := w.kinds()
	if len(got) != len(want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("recorded %v, want %v", got, want)
		}
	}
	if lat := w.recorded[0].Incident.OpenedAt.Sub(t0.Add(30 * time.Minute)); lat > time.Minute {
		t.Fatalf("flagged %s after the burst began", lat)
	}
}
