package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// holdIfIncident holds the run's first message while a failure-spike incident matches its
// failure: the payment most likely failed because a gateway, issuer or region is down, not
// because of anything the customer did. The hold ends when the detector releases it (the
// incident cleared, was released or was a false alarm), when support acts now, after the
// policy's max_hold, or when the run ends (a retry that succeeds recovers it). Later steps
// move back by the time held. A failing check never blocks dunning.
func (d *dunning) holdIfIncident(ctx workflow.Context, wfID string) {
	res, ok := d.checkHold(ctx, wfID)
	if !ok || res.IncidentID == "" || d.state.Status.Ended() {
		return
	}
	d.hold(ctx, res)
}

// checkHold asks whether an incident holds the run (ChangeSpikeHold: version 1 an activity,
// version 2 a local activity); ok is false when the run predates the change or the check
// failed.
func (d *dunning) checkHold(ctx workflow.Context, wfID string) (res activities.HoldResult, ok bool) {
	v := version(ctx, ChangeSpikeHold, 2)
	if v < 1 {
		return res, false
	}
	f := d.in.Failure
	in := activities.HoldInput{
		WorkflowID: wfID, Gateway: f.Gateway, CardBIN: f.CardBIN, Country: f.IssuerCountry, FailureCode: f.FailureCode,
		AmountMinor: f.AmountMinor, Now: workflow.Now(ctx),
	}
	var check workflow.Future
	if v >= 2 { // a local activity, like the run's other short PostgreSQL calls ("local-db-reads")
		opts := dbLocalActivity
		opts.Summary = "Check for a failure-spike incident"
		check = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), a.CheckHold, in)
	} else {
		check = workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Check for a failure-spike incident"), a.CheckHold, in)
	}
	if err := check.Get(ctx, &res); err != nil {
		d.log.Warn("could not check for failure-spike incidents; not holding", "error", err)
		return res, false
	}
	return res, true
}

// hold holds the run's first message until the hold ends; later steps move back by the
// time held (unless a pause already moves them).
func (d *dunning) hold(ctx workflow.Context, res activities.HoldResult) {
	since := workflow.Now(ctx)
	d.state.Hold = &recoup.Hold{IncidentID: res.IncidentID, Since: since, Until: since.Add(res.MaxHold)}
	d.holdReleased = false
	reason := "failure-spike incident " + res.IncidentID
	if res.Cohort != "" {
		reason += " (" + res.Cohort + ")"
	}
	if d.state.Status == recoup.StatusActive {
		d.setStatus(ctx, recoup.StatusHeld, reason)
	}
	d.state.NextAction, d.state.NextActionAt = "release from "+reason, d.state.Hold.Until
	d.updateDetails(ctx)
	d.log.Info("holding the first message", "incident", res.IncidentID, "cohort", res.Cohort)
	d.waiting = waitHold
	_, _ = awaitFor(ctx, res.MaxHold, fmt.Sprintf("held by %s until released (at most %s)", res.IncidentID, humanDuration(res.MaxHold)), func() bool {
		return d.holdReleased || d.actNowPending || d.state.Status.Ended()
	})
	d.waiting = waitNone
	d.actNowPending = false
	held := workflow.Now(ctx).Sub(since)
	if !d.pausedLike() {
		d.pausedFor += held // a pause already moves later steps back by itself
	}
	d.state.Hold = nil
	d.state.NextAction, d.state.NextActionAt = "", time.Time{}
	if d.state.Status == recoup.StatusHeld {
		// lean-run: set with the step's decision that follows at once (runStep flushes it)
		d.changeStatus(ctx, recoup.StatusActive, "", d.lean)
	}
	d.updateDetails(ctx)
	d.log.Info("hold ended", "incident", res.IncidentID, "held_for", held.String())
}

func (d *dunning) onReleaseHold(ctx workflow.Context, s recoup.ReleaseHold) {
	r := d.receive(ctx, recoup.SignalReleaseHold, "", time.Time{}, other)
	if r == nil {
		return
	}
	switch {
	case d.state.Hold == nil:
		r.Applied, r.Note = false, "not holding"
	case s.IncidentID != "" && s.IncidentID != d.state.Hold.IncidentID:
		r.Applied, r.Note = false, "held by "+d.state.Hold.IncidentID+", not "+s.IncidentID
	default:
		d.holdReleased = true
		r.Note = "hold released: " + s.Reason
		if s.By != "" && s.By != "spike-detector" {
			d.record(ctx, "release-hold", s.By, s.Reason, "signal")
		}
	}
}
