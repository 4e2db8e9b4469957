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

// DetectorHoldsEnd is the change (workflow.GetVersion id) after which the detector recovers
// open incidents from PostgreSQL when it starts over, stores an operator's action before
// applying it, keeps the incidents it maintains live (store.HoldIfIncident), and stores,
// releases and alerts in separate activities: releasing held runs never waits for alerts.
const DetectorHoldsEnd = "detector-holds-end"

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
}

// PendingAlert is an alert the detector is still trying to deliver, since Since.
type PendingAlert struct {
	Events []spike.Event `json:"events"`
	Since  time.Time     `json:"since"`
}

// DetectorStatus is what QueryIncidents returns.
type DetectorStatus struct {
	Incidents  []spike.Incident `json:"incidents"`
	Cohorts    int              `json:"cohorts"`
	Bucket     time.Time        `json:"bucket"` // start of the current minute of stream time
	Late       int              `json:"late"`   // records too old to count
	Records    int              `json:"records"`
	Duplicates int              `json:"duplicates"` // records whose event was counted already
	Alerting   int              `json:"alerting"`   // alerts not delivered yet
	Releasing  int              `json:"releasing"`  // incidents whose held runs are not all released yet
	Config     spike.Config     `json:"config"`
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
	if in.MaxHistory <= 0 {
		in.MaxHistory = 10000
	}
	d := &detector{in: in, log: workflow.GetLogger(ctx), releases: slices.Clone(in.Releases), releasing: map[string]bool{}}
	for _, p := range in.Alerts {
		d.alerts = append(d.alerts, &p)
	}
	return d.run(ctx)
}

// detector is the state of one run of the detector workflow (after DetectorHoldsEnd).
type detector struct {
	in      DetectorInput
	det     *spike.Detector // nil until the policy is loaded and the incidents recovered
	log     log.Logger
	records int // failure records received
	ticks   int
	acts    int           // activities scheduled (history events)
	pending []spike.Event // incident events not stored yet
	// busy: incidents are being stored; acting: an operator's action is being stored, and
	// the detector's state waits for it (nothing changes it until it is stored or refused).
	busy, acting bool
	alerts       []*PendingAlert  // not delivered yet
	releases     []spike.Incident // incidents whose held runs are still to be released
	releasing    map[string]bool  // releases in flight, by incident id
}

func (d *detector) run(ctx workflow.Context) error {
	if err := d.handlers(ctx); err != nil {
		return err
	}
	state := d.in.State
	if state == nil {
		state = &spike.State{}
	}
	cfg := state.Config
	if err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Load the spike policy"), a.SpikeConfig).Get(ctx, &cfg); err != nil {
		d.log.Warn("could not load the spike policy; keeping the last one", "error", err)
	}
	d.acts++
	cfg.Normalize = workflow.GetVersion(ctx, ChangeSpikeNormalize, workflow.DefaultVersion, 1) >= 1
	det := spike.New(state, cfg)
	recovered := 0
	if d.in.State == nil {
		// Started over (first start, terminated, or its history lost): take over the
		// incidents a predecessor left, keep them live, and release the runs of those that
		// stopped holding.
		var rec activities.IncidentRecovery
		d.acts++
		if err := workflow.ExecuteActivity(withSummary(ctx, recoverActivity, "Recover open incidents"), a.RecoverIncidents).Get(ctx, &rec); err != nil {
			return err
		}
		det.Recover(rec.Incidents, rec.LastID)
		d.releases = append(d.releases, rec.Unreleased...)
		recovered = len(rec.Incidents)
		if recovered > 0 || len(rec.Unreleased) > 0 {
			d.log.Info("recovered incidents", "active", recovered, "unreleased", len(rec.Unreleased))
		}
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

	failures := workflow.GetSignalChannel(ctx, recoup.SignalFailures)
	receive := func(c workflow.ReceiveChannel) {
		var recs []spike.Record
		c.Receive(ctx, &recs)
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
	drain := func() error {
		if err := workflow.Await(ctx, func() bool { return !d.acting }); err != nil {
			return err
		}
		for failures.Len() > 0 {
			receive(failures)
		}
		return nil
	}
	tick := func() workflow.Future { return workflow.NewTimer(ctx, d.det.S.Config.ShortWindow) }
	timer := tick()
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(failures, func(workflow.ReceiveChannel, bool) {}) // received by drain
		fired := false
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		if err := drain(); err != nil {
			return err
		}
		if fired {
			// With no failures arriving, stream time follows the clock (two minutes behind,
			// so records in flight still count in their minute).
			d.pending = append(d.pending, d.det.Advance(workflow.Now(ctx).Add(-2*d.det.S.Config.ShortWindow))...)
			timer = tick()
			d.ticks++
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
		info := workflow.GetInfo(ctx)
		// The history length is the server's figure; the records, ticks and activities bound
		// it too (each signal is one event, each tick's timer two or three, each activity
		// about six).
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= d.in.MaxHistory ||
			d.records+3*d.ticks+6*d.acts >= d.in.MaxHistory {
			if err := drain(); err != nil {
				return err
			}
			if len(d.pending) > 0 {
				if err := d.flush(ctx); err != nil {
					d.log.Error("could not store incidents before continuing as new; trying again later", "error", err)
					continue
				}
			}
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && !d.busy && !d.acting }); err != nil {
				return err
			}
			next := DetectorInput{State: d.det.S, MaxHistory: d.in.MaxHistory, Releases: d.releases}
			for _, p := range d.alerts {
				next.Alerts = append(next.Alerts, *p)
			}
			return workflow.NewContinueAsNewError(ctx, SpikeDetectorWorkflow, next)
		}
	}
}

func (d *detector) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, recoup.QueryIncidents, func() (DetectorStatus, error) {
		if d.det == nil {
			return DetectorStatus{}, errStarting
		}
		incs := append([]spike.Incident(nil), d.det.S.Incidents...)
		spike.SortIncidents(incs)
		return DetectorStatus{Incidents: incs, Cohorts: len(d.det.S.Cohorts), Bucket: d.det.S.Bucket, Late: d.det.S.Late,
			Records: d.records, Duplicates: d.det.S.Duplicates, Alerting: len(d.alerts), Releasing: len(d.releases),
			Config: d.det.S.Config, Mode: d.det.Mode(d.det.S.Bucket)}, nil
	}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, recoup.UpdateIncident, d.act,
		workflow.UpdateHandlerOptions{Validator: func(act recoup.IncidentAction) error {
			if d.det == nil {
				return errStarting
			}
			return d.det.CheckAct(act.IncidentID, act.Action)
		}})
}

var errStarting = errors.New("the failure-spike detector is starting (loading its policy and the open incidents); try again in a moment")

// act stores an operator's action, then applies it to the state; if it cannot be stored,
// the update fails and nothing changed. The runs an incident stops holding are released
// (retried on later ticks if that fails); the alert goes its own way.
func (d *detector) act(ctx workflow.Context, act recoup.IncidentAction) (spike.Incident, error) {
	if err := workflow.Await(ctx, func() bool { return !d.busy && !d.acting }); err != nil {
		return spike.Incident{}, err
	}
	note := act.Note
	if act.By != "" {
		note = act.By + ": " + note
	}
	inc, err := d.det.Acted(act.IncidentID, act.Action, note) // the state may have moved since validation
	if err != nil {
		return spike.Incident{}, temporal.NewApplicationError(err.Error(), "Rejected")
	}
	d.busy, d.acting = true, true
	d.acts++
	err = workflow.ExecuteActivity(withSummary(ctx, actionActivity, fmt.Sprintf("Store the action: %s %s", act.Action, inc.ID)),
		a.StoreIncidentAction, activities.IncidentActionInput{Action: act.Action, By: act.By, Incident: inc}).Get(ctx, nil)
	d.busy, d.acting = false, false
	if err != nil {
		d.log.Error("could not store an incident action; nothing changed", "incident", inc.ID, "action", act.Action, "error", err)
		return spike.Incident{}, temporal.NewApplicationError(
			fmt.Sprintf("could not store the %s of %s, so nothing changed (try again): %v", act.Action, inc.ID, err), "NotStored")
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

// live lists the incidents that hold runs (the detector keeps them live in the store).
func (d *detector) live() []string {
	var ids []string
	for _, in := range d.det.S.Incidents {
		if spike.Holding(in.Status) {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// flush stores the pending events' incidents, as they are now, and keeps the holding ones
// live; then it alerts on the events and releases the runs of the incidents that stopped
// holding, neither waiting for the other.
func (d *detector) flush(ctx workflow.Context) error {
	events := d.pending
	d.pending = nil
	if err := d.store(ctx, events); err != nil {
		d.pending = append(events, d.pending...)
		return err
	}
	if len(events) > 0 {
		d.queueAlert(ctx, events)
	}
	for _, ev := range events {
		if !spike.Holding(ev.Incident.Status) {
			d.queueRelease(ev.Incident)
		}
	}
	d.startReleases(ctx)
	return nil
}

func (d *detector) store(ctx workflow.Context, events []spike.Event) error {
	if err := workflow.Await(ctx, func() bool { return !d.busy }); err != nil {
		return err
	}
	d.busy = true
	defer func() { d.busy = false }()
	var incs []spike.Incident
	for _, ev := range events {
		in := ev.Incident
		if cur := d.det.Incident(in.ID); cur != nil {
			in = *cur // as it is now: a later action or clearing must not be overwritten
		}
		if !slices.ContainsFunc(incs, func(x spike.Incident) bool { return x.ID == in.ID }) {
			incs = append(incs, in)
		}
	}
	summary := "Keep the open incidents live"
	if len(events) > 0 {
		summary = fmt.Sprintf("Store %d incident event(s): %s %s", len(events), events[0].Kind, events[0].Incident.Cohort)
	}
	d.acts++
	return workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), a.StoreIncidents,
		activities.StoreIncidentsInput{Incidents: incs, Live: d.live()}).Get(ctx, nil)
}

func (d *detector) queueAlert(ctx workflow.Context, events []spike.Event) {
	p := &PendingAlert{Events: events, Since: workflow.Now(ctx)}
	d.alerts = append(d.alerts, p)
	d.startAlert(ctx, p)
}

// startAlert delivers an alert in the background, retrying it until AlertFor has passed
// since it was first tried; a failure is logged (and counted by the activity).
func (d *detector) startAlert(ctx workflow.Context, p *PendingAlert) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { d.alerts = slices.DeleteFunc(d.alerts, func(x *PendingAlert) bool { return x == p }) }()
		left := AlertFor - workflow.Now(ctx).Sub(p.Since)
		if left <= 0 {
			d.log.Error("gave up alerting on incident events", "incident", p.Events[0].Incident.ID, "kind", p.Events[0].Kind, "since", p.Since)
			return
		}
		opts := alertActivity
		opts.ScheduleToCloseTimeout = left
		d.acts++
		summary := fmt.Sprintf("Alert on %d incident event(s): %s %s", len(p.Events), p.Events[0].Kind, p.Events[0].Incident.ID)
		if err := workflow.ExecuteActivity(withSummary(ctx, opts, summary), a.AlertIncidents, activities.IncidentsInput{Events: p.Events}).Get(ctx, nil); err != nil {
			d.log.Error("gave up alerting on incident events", "incident", p.Events[0].Incident.ID, "kind", p.Events[0].Kind, "error", err)
		}
	})
}

// queueRelease notes that an incident's held runs are to be released.
func (d *detector) queueRelease(inc spike.Incident) {
	if !slices.ContainsFunc(d.releases, func(x spike.Incident) bool { return x.ID == inc.ID }) {
		d.releases = append(d.releases, inc)
	}
}

// startReleases releases, in the background, the runs of every queued incident whose
// release is not in flight.
func (d *detector) startReleases(ctx workflow.Context) {
	for _, inc := range d.releases {
		if !d.releasing[inc.ID] {
			workflow.Go(ctx, func(ctx workflow.Context) {
				if _, err := d.release(ctx, inc); err != nil {
					d.log.Error("could not release held runs; retrying on the next tick", "incident", inc.ID, "error", err)
				}
			})
		}
	}
}

// release releases the runs inc holds (one release per incident at a time); once done,
// the incident leaves the queue.
func (d *detector) release(ctx workflow.Context, inc spike.Incident) (int, error) {
	if d.releasing[inc.ID] {
		return 0, nil
	}
	d.releasing[inc.ID] = true
	defer delete(d.releasing, inc.ID)
	var res activities.IncidentsResult
	d.acts++
	err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Release the runs held by "+inc.ID+" ("+inc.Status+")"),
		a.ReleaseIncidentHolds, activities.ReleaseInput{Incident: inc}).Get(ctx, &res)
	if err != nil {
		return res.Released, err
	}
	d.releases = slices.DeleteFunc(d.releases, func(x spike.Incident) bool { return x.ID == inc.ID })
	return res.Released, nil
}

// legacyDetector is the detector before DetectorHoldsEnd, kept for the runs that started
// before it (until they continue as new): one RecordIncidents activity stores, releases and
// alerts; an operator's action is applied, then stored.
func legacyDetector(ctx workflow.Context, in DetectorInput) error {
	logger := workflow.GetLogger(ctx)
	maxHistory := in.MaxHistory
	if maxHistory <= 0 {
		maxHistory = 10000
	}
	state := in.State
	if state == nil {
		state = &spike.State{}
	}
	cfg := state.Config
	if err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Load the spike policy"), a.SpikeConfig).Get(ctx, &cfg); err != nil {
		logger.Warn("could not load the spike policy; keeping the last one", "error", err)
	}
	det := spike.New(state, cfg)
	records := 0

	var pending []spike.Event
	busy := false // serializes RecordIncidents between the main loop and operator updates
	record := func(ctx workflow.Context, events []spike.Event) (activities.IncidentsResult, error) {
		var res activities.IncidentsResult
		if len(events) == 0 {
			return res, nil
		}
		if err := workflow.Await(ctx, func() bool { return !busy }); err != nil {
			return res, err
		}
		busy = true
		defer func() { busy = false }()
		summary := fmt.Sprintf("Record %d incident event(s): %s %s", len(events), events[0].Kind, events[0].Incident.Cohort)
		err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), a.RecordIncidents, activities.IncidentsInput{Events: events}).Get(ctx, &res)
		return res, err
	}

	if err := workflow.SetQueryHandler(ctx, recoup.QueryIncidents, func() (DetectorStatus, error) {
		incs := append([]spike.Incident(nil), det.S.Incidents...)
		spike.SortIncidents(incs)
		return DetectorStatus{Incidents: incs, Cohorts: len(det.S.Cohorts), Bucket: det.S.Bucket, Late: det.S.Late,
			Records: records, Duplicates: det.S.Duplicates, Config: det.S.Config}, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, recoup.UpdateIncident,
		func(ctx workflow.Context, act recoup.IncidentAction) (spike.Incident, error) {
			note := act.Note
			if act.By != "" {
				note = act.By + ": " + note
			}
			inc, err := det.Act(act.IncidentID, act.Action, note)
			if err != nil {
				return inc, temporal.NewApplicationError(err.Error(), "Rejected")
			}
			logger.Info("incident action", "incident", inc.ID, "action", act.Action, "by", act.By)
			res, err := record(ctx, []spike.Event{{Kind: act.Action, Incident: inc}})
			if err != nil {
				return inc, err
			}
			if res.Released > 0 {
				inc.Note += fmt.Sprintf(" (%d held runs released)", res.Released)
			}
			return inc, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(act recoup.IncidentAction) error {
			return det.CheckAct(act.IncidentID, act.Action)
		}},
	); err != nil {
		return err
	}

	failures := workflow.GetSignalChannel(ctx, recoup.SignalFailures)
	receive := func(c workflow.ReceiveChannel) {
		var recs []spike.Record
		c.Receive(ctx, &recs)
		now := workflow.Now(ctx)
		for _, r := range recs {
			if r.At.After(now) || r.At.IsZero() {
				r.At = now // a clock ahead of ours must not move stream time into the future
			}
			records++
			if det.S.Config.Enabled {
				pending = append(pending, det.Observe(r)...)
			}
		}
	}
	tick := func() workflow.Future { return workflow.NewTimer(ctx, det.S.Config.ShortWindow) }
	timer := tick()
	ticks := 0
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(failures, func(c workflow.ReceiveChannel, _ bool) { receive(c) })
		fired := false
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		for failures.Len() > 0 {
			receive(failures)
		}
		if fired {
			// With no failures arriving, stream time follows the clock (two minutes behind,
			// so records in flight still count in their minute).
			pending = append(pending, det.Advance(workflow.Now(ctx).Add(-2*det.S.Config.ShortWindow))...)
			timer = tick()
			ticks++
		}
		if len(pending) > 0 {
			events := pending
			pending = nil
			if _, err := record(ctx, events); err != nil {
				logger.Error("could not record incidents; retrying with the next batch", "error", err)
				pending = append(events, pending...)
			}
		}
		info := workflow.GetInfo(ctx)
		// The history length is the server's figure; records + 3 per tick bounds it too
		// (each signal is one event, each tick's timer two or three).
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxHistory || records+3*ticks >= maxHistory {
			for failures.Len() > 0 {
				receive(failures)
			}
			if _, err := record(ctx, pending); err != nil {
				logger.Error("could not record incidents before continuing as new; trying again later", "error", err)
				continue
			}
			pending = nil
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && !busy }); err != nil {
				return err
			}
			return workflow.NewContinueAsNewError(ctx, SpikeDetectorWorkflow, DetectorInput{State: det.S, MaxHistory: in.MaxHistory})
		}
	}
}
