package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// AlertFor is how long the detector keeps retrying an alert (across continue-as-new).
const AlertFor = 24 * time.Hour

var (
	// recoverActivity retries until PostgreSQL answers: a detector must not start over
	// without the incidents its predecessor left.
	recoverActivity = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
	// actionActivity stores an operator's action while the operator waits for the answer.
	actionActivity = workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second},
	}
	// alertActivity retries an alert on its own (its ScheduleToClose is what is left of AlertFor).
	alertActivity = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	}
)

// DetectorInput starts (or continues as new) the failure-spike detector.
type DetectorInput struct {
	// State is the detector's state carried across continue-as-new; nil starts fresh (and
	// recovers the incidents a lost predecessor left in PostgreSQL).
	State *spike.State `json:"state,omitempty"`
	// MaxHistory continues as new once the history holds this many events (default 10,000);
	// the server's own suggestion also triggers it.
	MaxHistory int `json:"max_history,omitempty"`
	// Alerts not delivered and Releases not done yet when the detector continued as new.
	Alerts   []PendingAlert   `json:"alerts,omitempty"`
	Releases []spike.Incident `json:"releases,omitempty"`
	// Received is how many failure records the detector's earlier runs received (since it
	// last started fresh).
	Received int `json:"received,omitempty"`
}

// PendingAlert is an alert the detector is still trying to deliver, since Since.
type PendingAlert struct {
	Events []spike.Event `json:"events"`
	Since  time.Time     `json:"since"`
}

// DetectorStatus is what QueryIncidents returns.
type DetectorStatus struct {
	Incidents  []IncidentView `json:"incidents"` // never null: [] when there are none
	Cohorts    int            `json:"cohorts"`
	Bucket     time.Time      `json:"bucket,omitzero"` // start of the current minute of stream time
	Late       int            `json:"late"`            // records too old to count
	Records    int            `json:"records"`         // failure records received by this run
	Received   int            `json:"received"`        // and by its predecessors (since it started fresh)
	Duplicates int            `json:"duplicates"`      // records whose event was counted already
	Alerting   int            `json:"alerting"`        // alerts not delivered yet
	Releasing  int            `json:"releasing"`       // incidents whose held runs are not all released yet
	Config     ConfigView     `json:"config"`          // durations as strings ("1m0s")
	// Mode is how cohorts are judged now (spike.Detector.Mode): counts, rates or shares.
	Mode string `json:"mode"`
}

// SpikeDetectorWorkflow watches every payment failure (records signalled by the ingress)
// for spikes per cohort, records and alerts on incidents, and releases the runs an incident
// held when it clears or an operator releases it. One runs per namespace, with ID
// recoup.DetectorWorkflowID; it continues as new to bound its history.
func SpikeDetectorWorkflow(ctx workflow.Context, in DetectorInput) error {
	if workflow.GetVersion(ctx, DetectorHoldsEnd, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return legacyDetector(ctx, in)
	}
	d := newDetector(ctx, in)
	if err := d.setup(ctx); err != nil {
		return err
	}
	return d.run(ctx)
}

// detector is the state of one run of the detector workflow (after DetectorHoldsEnd).
type detector struct {
	in       DetectorInput
	det      *spike.Detector // nil until the policy is loaded and the incidents recovered
	log      log.Logger
	failures workflow.ReceiveChannel // SignalFailures
	timer    workflow.Future         // the current tick
	records  int                     // failure records received
	ticks    int
	acts     int           // activities scheduled (history events)
	pending  []spike.Event // incident events not stored yet
	// storing: one store activity (incidents or an operator's action) at a time.
	storing workflow.Mutex
	// acting: an operator's action is being stored, and the detector's state waits for it:
	// nothing changes it (no record is observed) until it is stored or refused.
	acting    workflow.Mutex
	alerts    []*PendingAlert  // not delivered yet
	releases  []spike.Incident // incidents whose held runs are still to be released
	releasing map[string]bool  // releases in flight, by incident id
}

func newDetector(ctx workflow.Context, in DetectorInput) *detector {
	if in.MaxHistory <= 0 {
		in.MaxHistory = 10000
	}
	d := &detector{in: in, log: workflow.GetLogger(ctx), releases: slices.Clone(in.Releases), releasing: map[string]bool{},
		storing: workflow.NewMutex(ctx), acting: workflow.NewMutex(ctx)}
	for _, p := range in.Alerts {
		d.alerts = append(d.alerts, &p)
	}
	return d
}

// setup registers the handlers, loads the policy, takes over the incidents a predecessor
// left (when started over) and resumes the alerts and releases carried across
// continue-as-new.
func (d *detector) setup(ctx workflow.Context) error {
	if err := d.registerHandlers(ctx); err != nil {
		return err
	}
	state := d.in.State
	if state == nil {
		state = &spike.State{}
	}
	det := spike.New(state, d.loadPolicy(ctx, state.Config))
	recovered := 0
	if d.in.State == nil {
		n, err := d.recoverIncidents(ctx, det)
		if err != nil {
			return err
		}
		recovered = n
	}
	d.det = det
	if recovered > 0 {
		if err := d.store(ctx, nil); err != nil {
			d.log.Error("could not keep the recovered incidents live; retrying on the next tick", "error", err)
		}
	}
	for _, p := range d.alerts {
		d.startAlert(ctx, p)
	}
	d.startReleases(ctx)
	return nil
}

// loadPolicy returns the spike policy in force (last, when it cannot be loaded).
func (d *detector) loadPolicy(ctx workflow.Context, last spike.Config) spike.Config {
	cfg := last
	if err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Load the spike policy"), detectorActs.SpikeConfig).Get(ctx, &cfg); err != nil {
		d.log.Warn("could not load the spike policy; keeping the last one", "error", err)
	}
	d.acts++
	cfg.Normalize = workflow.GetVersion(ctx, ChangeSpikeNormalize, workflow.DefaultVersion, 1) >= 1
	return cfg
}

// recoverIncidents takes over the incidents a predecessor left (first start, terminated, or
// its history lost): they are kept live, and the runs of those that stopped holding are
// released. It returns how many incidents are active.
func (d *detector) recoverIncidents(ctx workflow.Context, det *spike.Detector) (int, error) {
	var rec activities.IncidentRecovery
	d.acts++
	if err := workflow.ExecuteActivity(withSummary(ctx, recoverActivity, "Recover open incidents"), detectorActs.RecoverIncidents).Get(ctx, &rec); err != nil {
		return 0, err
	}
	det.Recover(rec.Incidents, rec.LastID)
	d.releases = append(d.releases, rec.Unreleased...)
	if len(rec.Incidents) > 0 || len(rec.Unreleased) > 0 {
		d.log.Info("recovered incidents", "active", len(rec.Incidents), "unreleased", len(rec.Unreleased))
	}
	return len(rec.Incidents), nil
}

// run observes the failure records and the ticks until the history is long enough to
// continue as new.
func (d *detector) run(ctx workflow.Context) error {
	d.failures = workflow.GetSignalChannel(ctx, recoup.SignalFailures)
	d.timer = d.tick(ctx)
	for {
		fired := d.waitForWork(ctx)
		if err := d.drain(ctx); err != nil {
			return err
		}
		if fired {
			d.advance(ctx)
		}
		// Every tick keeps the holding incidents live, with whatever changed.
		if len(d.pending) > 0 || (fired && len(d.live()) > 0) {
			if err := d.flush(ctx); err != nil {
				d.log.Error("could not store incidents; retrying with the next batch", "error", err)
			}
		}
		if fired {
			d.startReleases(ctx) // those that failed before
		}
		if d.historyLong(ctx) {
			if done, err := d.continueAsNew(ctx); done {
				return err
			}
		}
	}
}

func (d *detector) tick(ctx workflow.Context) workflow.Future {
	return workflow.NewTimerWithOptions(ctx, d.det.S.Config.ShortWindow, workflow.TimerOptions{Summary: "tick: move stream time on (" + humanDuration(d.det.S.Config.ShortWindow) + ")"})
}

// waitForWork blocks until failure records arrive or the tick fires; it reports the tick.
func (d *detector) waitForWork(ctx workflow.Context) (fired bool) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(d.failures, func(workflow.ReceiveChannel, bool) {}) // received by drain
	sel.AddFuture(d.timer, func(workflow.Future) { fired = true })
	sel.Select(ctx)
	return fired
}

// drain observes every failure record received, once no operator's action holds the state.
func (d *detector) drain(ctx workflow.Context) error {
	if err := d.acting.Lock(ctx); err != nil {
		return err
	}
	defer d.acting.Unlock()
	for d.failures.Len() > 0 {
		d.observe(ctx)
	}
	return nil
}

// observe receives one signal of failure records and counts them in stream time.
func (d *detector) observe(ctx workflow.Context) {
	var recs []spike.Record
	d.failures.Receive(ctx, &recs)
	now := workflow.Now(ctx)
	for _, r := range recs {
		if r.At.After(now) || r.At.IsZero() {
			r.At = now // a clock ahead of ours must not move stream time into the future
		}
		d.records++
		if d.det.S.Config.Enabled {
			d.pending = append(d.pending, d.det.Observe(r)...)
		}
	}
}

// advance moves stream time with the clock when the tick fires, with no failures arriving
// (two minutes behind, so records in flight still count in their minute).
func (d *detector) advance(ctx workflow.Context) {
	d.pending = append(d.pending, d.det.Advance(workflow.Now(ctx).Add(-2*d.det.S.Config.ShortWindow))...)
	d.timer = d.tick(ctx)
	d.ticks++
}

// historyLong reports whether the detector should continue as new. The history length is
// the server's figure; the records, ticks and activities bound it too (each signal is one
// event, each tick's timer two or three, each activity about six).
func (d *detector) historyLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= d.in.MaxHistory ||
		d.records+3*d.ticks+6*d.acts >= d.in.MaxHistory
}

// continueAsNew stores what is pending and carries the state, the alerts and the releases
// into a new run. done is false when the pending incidents could not be stored: the
// detector keeps running and tries again later.
func (d *detector) continueAsNew(ctx workflow.Context) (done bool, err error) {
	if err := d.drain(ctx); err != nil {
		return true, err
	}
	if len(d.pending) > 0 {
		if err := d.flush(ctx); err != nil {
			d.log.Error("could not store incidents before continuing as new; trying again later", "error", err)
			return false, nil
		}
	}
	if err := workflow.Await(ctx, func() bool {
		return workflow.AllHandlersFinished(ctx) && !d.storing.IsLocked() && !d.acting.IsLocked()
	}); err != nil {
		return true, err
	}
	next := DetectorInput{State: d.det.S, MaxHistory: d.in.MaxHistory, Releases: d.releases, Received: d.in.Received + d.records}
	for _, p := range d.alerts {
		next.Alerts = append(next.Alerts, *p)
	}
	// On the detector's own task queue: a detector started on TaskQueue (before it had one)
	// moves there at its next continue-as-new.
	return true, workflow.NewContinueAsNewError(workflow.WithWorkflowTaskQueue(ctx, recoup.DetectorTaskQueue), SpikeDetectorWorkflow, next)
}

func (d *detector) registerHandlers(ctx workflow.Context) error {
	if err := setQuery(ctx, recoup.QueryIncidents, d.status); err != nil {
		return err
	}
	return setUpdate(ctx, recoup.UpdateIncident, d.validateAct, d.act)
}

// status is what QueryIncidents returns.
func (d *detector) status() (DetectorStatus, error) {
	if d.det == nil {
		return DetectorStatus{}, errStarting
	}
	return DetectorStatus{Incidents: incidentViews(d.det.S.Incidents), Cohorts: len(d.det.S.Cohorts), Bucket: d.det.S.Bucket, Late: d.det.S.Late,
		Records: d.records, Received: d.in.Received + d.records, Duplicates: d.det.S.Duplicates, Alerting: len(d.alerts), Releasing: len(d.releases),
		Config: configView(d.det.S.Config), Mode: d.det.Mode(d.det.S.Bucket)}, nil
}

func (d *detector) validateAct(act recoup.IncidentAction) error {
	if d.det == nil {
		return errStarting
	}
	return d.det.CheckAct(act.IncidentID, act.Action)
}

var errStarting = errors.New("the failure-spike detector is starting (loading its policy and the open incidents); try again in a moment")

// act stores an operator's action, then applies it to the state; if it cannot be stored,
// the update fails and nothing changed. The runs an incident stops holding are released
// (retried on later ticks if that fails); the alert goes its own way.
func (d *detector) act(ctx workflow.Context, act recoup.IncidentAction) (spike.Incident, error) {
	inc, err := d.storeAction(ctx, act)
	if err != nil {
		return spike.Incident{}, err
	}
	if err := d.det.Apply(inc); err != nil {
		return spike.Incident{}, err // cannot happen: nothing changed the state while the action was stored
	}
	d.log.Info("incident action", "incident", inc.ID, "action", act.Action, "by", act.By)
	d.queueAlert(ctx, []spike.Event{{Kind: act.Action, Incident: inc}})
	if !spike.Holding(inc.Status) {
		d.queueRelease(inc)
		switch n, err := d.release(ctx, inc); {
		case err != nil:
			inc.Note += " (releasing its held runs failed; the detector keeps trying)"
		case n > 0:
			inc.Note += fmt.Sprintf(" (%d held runs released)", n)
		}
	}
	return inc, nil
}

// storeAction checks the action against the state as it is now and stores the incident as
// the action leaves it, holding the state (no record is observed) until it is stored.
func (d *detector) storeAction(ctx workflow.Context, act recoup.IncidentAction) (spike.Incident, error) {
	if err := d.storing.Lock(ctx); err != nil {
		return spike.Incident{}, err
	}
	defer d.storing.Unlock()
	note := act.Note
	if act.By != "" {
		note = act.By + ": " + note
	}
	inc, err := d.det.Acted(act.IncidentID, act.Action, note) // the state may have moved since validation
	if err != nil {
		return spike.Incident{}, temporal.NewApplicationError(err.Error(), "Rejected")
	}
	if err := d.acting.Lock(ctx); err != nil { // free: only an action holds it across a yield
		return spike.Incident{}, err
	}
	defer d.acting.Unlock()
	d.acts++
	err = workflow.ExecuteActivity(withSummary(ctx, actionActivity, fmt.Sprintf("Store the action: %s %s", act.Action, inc.ID)),
		detectorActs.StoreIncidentAction, activities.IncidentActionInput{Action: act.Action, By: act.By, Incident: inc}).Get(ctx, nil)
	if err != nil {
		d.log.Error("could not store an incident action; nothing changed", "incident", inc.ID, "action", act.Action, "error", err)
		return spike.Incident{}, temporal.NewApplicationError(
			fmt.Sprintf("could not store the %s of %s, so nothing changed (try again): %v", act.Action, inc.ID, err), "NotStored")
	}
	return inc, nil
}
