package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/spike"
)

// DetectorInput starts (or continues as new) the failure-spike detector.
type DetectorInput struct {
	// State is the detector's state carried across continue-as-new; nil starts fresh.
	State *spike.State `json:"state,omitempty"`
	// MaxHistory continues as new once the history holds this many events (default 10,000);
	// the server's own suggestion also triggers it.
	MaxHistory int `json:"max_history,omitempty"`
}

// DetectorStatus is what QueryIncidents returns.
type DetectorStatus struct {
	Incidents []spike.Incident `json:"incidents"`
	Cohorts   int              `json:"cohorts"`
	Bucket    time.Time        `json:"bucket"` // start of the current minute of stream time
	Late      int              `json:"late"`   // records too old to count
	Records   int              `json:"records"`
	Config    spike.Config     `json:"config"`
}

// SpikeDetectorWorkflow watches every payment failure (records signalled by the ingress)
// for spikes per cohort, records and alerts on incidents, and releases the runs an incident
// held when it clears or an operator releases it. One runs per namespace, with ID
// recoup.DetectorWorkflowID; it continues as new to bound its history.
func SpikeDetectorWorkflow(ctx workflow.Context, in DetectorInput) error {
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
			Records: records, Config: det.S.Config}, nil
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
