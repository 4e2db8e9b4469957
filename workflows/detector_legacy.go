package workflows

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// legacyDetector is the detector before DetectorHoldsEnd, kept for the runs that started
// before it (until they continue as new): one RecordIncidents activity stores, releases and
// alerts; an operator's action is applied, then stored.
func legacyDetector(ctx workflow.Context, in DetectorInput) error {
	d := &legacy{in: in, log: workflow.GetLogger(ctx), maxHistory: in.MaxHistory, recording: workflow.NewMutex(ctx)}
	if d.maxHistory <= 0 {
		d.maxHistory = 10000
	}
	if err := d.setup(ctx); err != nil {
		return err
	}
	return d.run(ctx)
}

// legacy is the state of one run of legacyDetector.
type legacy struct {
	in         DetectorInput
	log        log.Logger
	maxHistory int
	det        *spike.Detector
	failures   workflow.ReceiveChannel
	records    int
	ticks      int
	pending    []spike.Event
	// recording serializes RecordIncidents between the main loop and operator updates.
	recording workflow.Mutex
}

// setup loads the policy, then registers the handlers (in this order: the recorded runs
// accepted updates only once the policy was loaded).
func (d *legacy) setup(ctx workflow.Context) error {
	state := d.in.State
	if state == nil {
		state = &spike.State{}
	}
	cfg := state.Config
	if err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Load the spike policy"), detectorActs.SpikeConfig).Get(ctx, &cfg); err != nil {
		d.log.Warn("could not load the spike policy; keeping the last one", "error", err)
	}
	d.det = spike.New(state, cfg)
	if err := setQuery(ctx, recoup.QueryIncidents, d.status); err != nil {
		return err
	}
	return setUpdate(ctx, recoup.UpdateIncident, d.validateAct, d.act)
}

func (d *legacy) status() (DetectorStatus, error) {
	return DetectorStatus{Incidents: incidentViews(d.det.S.Incidents), Cohorts: len(d.det.S.Cohorts), Bucket: d.det.S.Bucket, Late: d.det.S.Late,
		Records: d.records, Duplicates: d.det.S.Duplicates, Config: configView(d.det.S.Config)}, nil
}

func (d *legacy) validateAct(act recoup.IncidentAction) error {
	return d.det.CheckAct(act.IncidentID, act.Action)
}

// act applies an operator's action, then records it.
func (d *legacy) act(ctx workflow.Context, act recoup.IncidentAction) (spike.Incident, error) {
	note := act.Note
	if act.By != "" {
		note = act.By + ": " + note
	}
	inc, err := d.det.Act(act.IncidentID, act.Action, note)
	if err != nil {
		return inc, temporal.NewApplicationError(err.Error(), "Rejected")
	}
	d.log.Info("incident action", "incident", inc.ID, "action", act.Action, "by", act.By)
	res, err := d.record(ctx, []spike.Event{{Kind: act.Action, Incident: inc}})
	if err != nil {
		return inc, err
	}
	if res.Released > 0 {
		inc.Note += fmt.Sprintf(" (%d held runs released)", res.Released)
	}
	return inc, nil
}

// record stores, releases and alerts on events in one RecordIncidents activity.
func (d *legacy) record(ctx workflow.Context, events []spike.Event) (activities.IncidentsResult, error) {
	var res activities.IncidentsResult
	if len(events) == 0 {
		return res, nil
	}
	if err := d.recording.Lock(ctx); err != nil {
		return res, err
	}
	defer d.recording.Unlock()
	summary := fmt.Sprintf("Record %d incident event(s): %s %s", len(events), events[0].Kind, events[0].Incident.Cohort)
	err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), detectorActs.RecordIncidents, activities.IncidentsInput{Events: events}).Get(ctx, &res)
	return res, err
}

func (d *legacy) run(ctx workflow.Context) error {
	d.failures = workflow.GetSignalChannel(ctx, recoup.SignalFailures)
	timer := d.tick(ctx)
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(d.failures, func(c workflow.ReceiveChannel, _ bool) { d.observe(ctx) })
		fired := false
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		for d.failures.Len() > 0 {
			d.observe(ctx)
		}
		if fired {
			// With no failures arriving, stream time follows the clock (two minutes behind,
			// so records in flight still count in their minute).
			d.pending = append(d.pending, d.det.Advance(workflow.Now(ctx).Add(-2*d.det.S.Config.ShortWindow))...)
			timer = d.tick(ctx)
			d.ticks++
		}
		d.recordPending(ctx)
		if d.historyLong(ctx) {
			if done, err := d.continueAsNew(ctx); done {
				return err
			}
		}
	}
}

func (d *legacy) tick(ctx workflow.Context) workflow.Future {
	return workflow.NewTimerWithOptions(ctx, d.det.S.Config.ShortWindow, workflow.TimerOptions{Summary: "tick: move stream time on (" + humanDuration(d.det.S.Config.ShortWindow) + ")"})
}

// observe receives one signal of failure records and counts them in stream time.
func (d *legacy) observe(ctx workflow.Context) {
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

func (d *legacy) recordPending(ctx workflow.Context) {
	if len(d.pending) == 0 {
		return
	}
	events := d.pending
	d.pending = nil
	if _, err := d.record(ctx, events); err != nil {
		d.log.Error("could not record incidents; retrying with the next batch", "error", err)
		d.pending = append(events, d.pending...)
	}
}

// historyLong: the history length is the server's figure; records + 3 per tick bounds it
// too (each signal is one event, each tick's timer two or three).
func (d *legacy) historyLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= d.maxHistory || d.records+3*d.ticks >= d.maxHistory
}

// continueAsNew records what is pending and continues as new; done is false when that
// could not be recorded (the detector tries again later).
func (d *legacy) continueAsNew(ctx workflow.Context) (done bool, err error) {
	for d.failures.Len() > 0 {
		d.observe(ctx)
	}
	if _, err := d.record(ctx, d.pending); err != nil {
		d.log.Error("could not record incidents before continuing as new; trying again later", "error", err)
		return false, nil
	}
	d.pending = nil
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && !d.recording.IsLocked() }); err != nil {
		return true, err
	}
	return true, workflow.NewContinueAsNewError(workflow.WithWorkflowTaskQueue(ctx, recoup.DetectorTaskQueue), SpikeDetectorWorkflow,
		DetectorInput{State: d.det.S, MaxHistory: d.in.MaxHistory})
}
