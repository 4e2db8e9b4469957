package workflows_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/workflows"
)

// detectorWorld runs the detector workflow in the SDK's test environment with its
// activities mocked, recording what it stored, released and alerted.
type detectorWorld struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu            sync.Mutex
	stored        []activities.StoreIncidentsInput
	actions       []activities.IncidentActionInput
	released      []string // "id status" per release
	alerted       []string // "kind cohort status" per delivered alert event
	alertAttempts int

	recovery     postgres.Recovery
	alertErr     error // every alert fails with it
	storeActErrs int   // the first n action stores fail
}

func newDetector(t *testing.T) *detectorWorld {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflowWithOptions(workflows.SpikeDetectorWorkflow, workflow.RegisterOptions{Name: recoup.DetectorWorkflowType})
	env.RegisterActivity(&activities.DunningActivities{})
	env.RegisterActivity(&activities.DetectorActivities{})
	w := &detectorWorld{t: t, env: env}
	cfg := spike.DefaultConfig()
	cfg.Warmup = 10 * time.Minute
	env.OnActivity(a.SpikeConfig, mock.Anything).Return(cfg, nil)
	env.OnActivity(a.RecoverIncidents, mock.Anything).Return(func(context.Context) (postgres.Recovery, error) {
		return w.recovery, nil
	})
	env.OnActivity(a.StoreIncidents, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.StoreIncidentsInput) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.stored = append(w.stored, in)
		return nil
	})
	env.OnActivity(a.StoreIncidentAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.IncidentActionInput) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.storeActErrs > 0 {
			w.storeActErrs--
			return errors.New("PostgreSQL: connection refused")
		}
		w.actions = append(w.actions, in)
		return nil
	})
	env.OnActivity(a.ReleaseIncidentHolds, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReleaseInput) (activities.IncidentsResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.released = append(w.released, in.Incident.ID+" "+in.Incident.Status)
		return activities.IncidentsResult{Released: 3}, nil
	})
	env.OnActivity(a.AlertIncidents, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.IncidentsInput) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.alertAttempts++
		if w.alertErr != nil {
			return w.alertErr
		}
		for _, e := range in.Events {
			w.alerted = append(w.alerted, e.Kind+" "+e.Incident.Cohort+" "+e.Incident.Status)
		}
		return nil
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

func (w *detectorWorld) status() workflows.DetectorStatus {
	w.t.Helper()
	var st workflows.DetectorStatus
	v, err := w.env.QueryWorkflow(recoup.QueryIncidents)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		w.t.Errorf("query: %v", err)
	}
	return st
}

// act sends an operator's action at d and returns where its outcome lands.
func (w *detectorWorld) act(d time.Duration, id func() string, action string) *incidentOutcome {
	out := &incidentOutcome{}
	w.env.RegisterDelayedCallback(func() {
		w.env.UpdateWorkflow(recoup.UpdateIncident, action+d.String(), &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.err, out.done = err, true },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				out.done, out.err = true, err
				if inc, ok := v.(spike.Incident); ok {
					out.inc = inc
				}
			},
		}, recoup.IncidentAction{IncidentID: id(), Action: action, By: "ops", Note: "gateway confirmed"})
	}, d)
	return out
}

type incidentOutcome struct {
	done bool
	inc  spike.Incident
	err  error
}

// run runs the detector until it continues as new (its history bounded by maxHistory).
func (w *detectorWorld) run(maxHistory int) workflows.DetectorInput {
	w.t.Helper()
	w.env.ExecuteWorkflow(workflows.SpikeDetectorWorkflow, workflows.DetectorInput{MaxHistory: maxHistory})
	var can *workflow.ContinueAsNewError
	if err := w.env.GetWorkflowError(); !errors.As(err, &can) {
		w.t.Fatalf("workflow ended with %v, want continue-as-new once its history grew", err)
	}
	// On its own task queue, also when this run was started on the dunning runs' queue.
	if can.TaskQueueName != recoup.DetectorTaskQueue {
		w.t.Fatalf("the detector continues as new on task queue %q, want %q", can.TaskQueueName, recoup.DetectorTaskQueue)
	}
	var next workflows.DetectorInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		w.t.Fatal(err)
	}
	return next
}

// burst is the scenario of most tests: steady failures of one BIN, then a burst from
// another at 30m, the background going on.
func (w *detectorWorld) burst() func() string {
	w.feed(0, 20*time.Second, 90, "424242")                         // 3 a minute for 30 minutes
	w.feed(30*time.Minute, 2*time.Second, 30, "411111")             // a burst: 30 in a minute
	w.feed(30*time.Minute+time.Second, 20*time.Second, 9, "424242") // the background goes on
	var id string
	w.env.RegisterDelayedCallback(func() {
		for _, in := range w.status().Incidents {
			id = in.ID
		}
	}, 32*time.Minute)
	return func() string { return id }
}

// Steady failures, then a burst from one BIN: the detector stores and alerts one incident
// for the BIN, stores an operator's release before applying it (and releases the held
// runs), refuses an action on an unknown incident, and clears the incident once the burst
// is over. The history is bounded by continue-as-new, which carries the state.
func TestDetectorWorkflowFlagsReleasesAndClears(t *testing.T) {
	w := newDetector(t)
	id := w.burst()
	var status workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() { status = w.status() }, 33*time.Minute)
	rel := w.act(33*time.Minute, id, "release")
	bad := w.act(33*time.Minute+time.Second, func() string { return "inc-nope" }, "release")
	w.env.SetDetachedChildWait(false)
	w.run(400)
	if len(status.Incidents) != 1 || status.Incidents[0].Cohort != "bin=411111" || status.Records < 100 {
		t.Fatalf("query at 33m: %+v", status)
	}
	if !rel.done || rel.err != nil || rel.inc.Status != spike.Released || !strings.Contains(rel.inc.Note, "3 held runs released") {
		t.Fatalf("release: %+v", rel)
	}
	if !bad.done || bad.err == nil || !strings.Contains(bad.err.Error(), `no incident "inc-nope"`) {
		t.Fatalf("an action on an unknown incident: %+v, want it refused", bad)
	}
	want := []string{"opened bin=411111 open", "release bin=411111 released", "cleared bin=411111 cleared"}
	if !slices.Equal(w.alerted, want) {
		t.Fatalf("alerted %v, want %v", w.alerted, want)
	}
	if len(w.actions) != 1 || w.actions[0].Incident.Status != spike.Released || w.actions[0].By != "ops" {
		t.Fatalf("stored actions %+v, want the release", w.actions)
	}
	if want := []string{id() + " released", id() + " cleared"}; !slices.Equal(w.released, want) {
		t.Fatalf("released %v, want %v", w.released, want)
	}
}

// Releasing held runs does not depend on alerting: with the alert webhook failing every
// time, the runs held by an incident are still released when an operator releases it and
// when it clears; the alerts are retried on their own, stay pending (the query shows them)
// and are carried across continue-as-new.
func TestDetectorReleasesHeldRunsWhenAlertsFail(t *testing.T) {
	w := newDetector(t)
	w.alertErr = errors.New("alert webhook for incident: 503 Service Unavailable")
	id := w.burst()
	rel := w.act(33*time.Minute, id, "release")
	var at50 workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() { at50 = w.status() }, 50*time.Minute)
	next := w.run(400)
	if !rel.done || rel.err != nil || rel.inc.Status != spike.Released {
		t.Fatalf("release with alerts failing: %+v", rel)
	}
	if want := []string{id() + " released", id() + " cleared"}; !slices.Equal(w.released, want) {
		t.Fatalf("released %v with the alert webhook down, want %v", w.released, want)
	}
	if len(w.alerted) != 0 || w.alertAttempts < 6 {
		t.Fatalf("alerts delivered %v after %d attempts; want none delivered, retried", w.alerted, w.alertAttempts)
	}
	if at50.Alerting != 3 || at50.Releasing != 0 {
		t.Fatalf("at 50m %d alerts pending and %d releases; want the 3 alerts (opened, release, cleared) pending, no release", at50.Alerting, at50.Releasing)
	}
	carried := false
	for _, p := range next.Alerts {
		carried = carried || (p.Events[0].Kind == "cleared" && p.Events[0].Incident.ID == id())
	}
	if !carried {
		t.Fatalf("continue-as-new carries alerts %+v, want the undelivered cleared alert", next.Alerts)
	}
}

// An operator's action is stored before it changes anything: when storing it fails, the
// update fails saying nothing changed, the incident still holds and no run is released;
// once storing works, the same action applies.
func TestDetectorStoresAnActionBeforeApplyingIt(t *testing.T) {
	w := newDetector(t)
	w.storeActErrs = 1000 // fails until the action store gives up
	id := w.burst()
	first := w.act(33*time.Minute, id, "release")
	var after workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() {
		after = w.status()
		w.mu.Lock()
		w.storeActErrs = 0
		w.mu.Unlock()
	}, 36*time.Minute)
	second := w.act(36*time.Minute+time.Second, id, "release")
	w.run(400)
	if !first.done || first.err == nil || !strings.Contains(first.err.Error(), "nothing changed") {
		t.Fatalf("release while PostgreSQL is down: %+v, want an error saying nothing changed", first)
	}
	if len(after.Incidents) != 1 || after.Incidents[0].Status != spike.Open || after.Incidents[0].Note != "" {
		t.Fatalf("after the failed release the detector has %+v, want the incident still open", after.Incidents)
	}
	if len(w.released) == 0 || w.released[0] != id()+" released" {
		t.Fatalf("released %v, want the runs released only by the stored release", w.released)
	}
	if !second.done || second.err != nil || second.inc.Status != spike.Released || len(w.actions) != 1 {
		t.Fatalf("the release once stored: %+v, stored %+v", second, w.actions)
	}
}

// A detector that starts over (its predecessor terminated or its history lost) takes over
// the open incident its predecessor left in PostgreSQL: it keeps the incident live at once
// and on every tick while it holds, releases the runs of an incident that ended without
// its runs released, and clears the open one once its cohort is back to its recorded
// baseline, releasing its runs.
func TestRestartedDetectorRecoversOpenIncidents(t *testing.T) {
	w := newDetector(t)
	open := spike.Incident{ID: "inc-20261102T1100-4", Cohort: "bin=411111", Dimension: "bin", Value: "411111",
		Status: spike.Acknowledged, Severity: "major", OpenedAt: t0.Add(-time.Hour), OnsetAt: t0.Add(-time.Hour),
		Evidence: spike.Evidence{Window: time.Minute, Observed: 30, Expected: 2, Ratio: 15}}
	ended := open
	ended.ID, ended.Cohort, ended.Value, ended.Status = "inc-20261102T1000-2", "bin=424242", "424242", spike.Cleared
	w.recovery = postgres.Recovery{Incidents: []spike.Incident{open}, Unreleased: []spike.Incident{ended},
		Held: map[string]int{open.ID: 5, ended.ID: 2}, LastID: 4}
	w.feed(0, 30*time.Second, 40, "411111") // 2 a minute: the recorded baseline
	var during workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() { during = w.status() }, 5*time.Minute)
	w.run(200)
	if len(during.Incidents) != 1 || during.Incidents[0].ID != open.ID || during.Incidents[0].Status != spike.Acknowledged {
		t.Fatalf("at 5m the detector has %+v, want the recovered incident", during.Incidents)
	}
	if len(w.stored) == 0 || !slices.Equal(w.stored[0].Live, []string{open.ID}) {
		t.Fatalf("first store %+v, want the recovered incident kept live at once", w.stored)
	}
	live, cleared := 0, false
	for _, s := range w.stored {
		if slices.Contains(s.Live, open.ID) {
			live++
			if cleared {
				t.Fatal("the incident was kept live after it cleared")
			}
		}
		for _, in := range s.Incidents {
			cleared = cleared || (in.ID == open.ID && in.Status == spike.Cleared)
		}
	}
	if !cleared || live < 10 {
		t.Fatalf("stored %d live marks; cleared %v: want the incident kept live each minute, then cleared", live, cleared)
	}
	if want := []string{ended.ID + " cleared", open.ID + " cleared"}; !slices.Equal(w.released, want) {
		t.Fatalf("released %v, want %v", w.released, want)
	}
}

// The relay may deliver a payment.failed again: the detector counts each event id once
// (8 failures delivered 3 times each are 8, and open no incident), and carries the ids it
// has seen across continue-as-new.
func TestDetectorCountsRedeliveredEventsOnce(t *testing.T) {
	w := newDetector(t)
	w.feed(0, 20*time.Second, 90, "424242")
	for i := range 3 {
		w.env.RegisterDelayedCallback(func() {
			var recs []spike.Record
			for j := range 8 {
				recs = append(recs, spike.Record{EventID: "evt_" + string(rune('a'+j)), At: t0.Add(30*time.Minute + time.Duration(j)*time.Second),
					BIN: "411111", Gateway: "stripe"})
			}
			w.env.SignalWorkflow(recoup.SignalFailures, recs)
		}, 30*time.Minute+time.Duration(i)*10*time.Second)
	}
	var st workflows.DetectorStatus
	w.env.RegisterDelayedCallback(func() { st = w.status() }, 31*time.Minute)
	next := w.run(240) // continues as new at about 37m, while the ids are within the long window
	if st.Duplicates != 16 || len(st.Incidents) != 0 {
		t.Fatalf("after 8 failures delivered 3 times: %d duplicates, incidents %+v; want 16 and none", st.Duplicates, st.Incidents)
	}
	if next.State == nil || next.State.Seen.Len() != 8 || next.State.Duplicates != 16 {
		t.Fatalf("continue-as-new carries %+v, want the 8 event ids seen", next.State)
	}
	// Every record received counts in Received (duplicates too), across continue-as-new.
	if st.Received != 90+24 || next.Received != 90+24 {
		t.Errorf("received %d at 31m, %d carried across continue-as-new; want 114 (90 + 3×8)", st.Received, next.Received)
	}
}
