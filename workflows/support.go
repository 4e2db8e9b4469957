package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
)

// Support actions: each is an Update with a validator, and a signal of the same name (the
// signal path applies the same validation and records a rejection instead of returning it).

// ErrTypeRejected is the application error type of a support action refused by its validator.
const ErrTypeRejected = "ActionRejected"

func rejected(format string, a ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, a...), ErrTypeRejected)
}

func (d *dunning) registerUpdates(ctx workflow.Context) error {
	type handler struct {
		name      string
		fn        any
		validator any
	}
	handlers := []handler{
		{recoup.UpdatePause, func(ctx workflow.Context, r recoup.Pause) (recoup.ActionResult, error) {
			return d.result(d.pause(ctx, r, "update")), nil
		}, func(_ workflow.Context, r recoup.Pause) error { return d.validatePause(r) }},
		{recoup.UpdateResume, func(ctx workflow.Context, r recoup.Resume) (recoup.ActionResult, error) {
			return d.result(d.resume(ctx, r, "update")), nil
		}, func(_ workflow.Context, r recoup.Resume) error { return d.validateResume(r) }},
		{recoup.UpdateCancel, func(ctx workflow.Context, r recoup.Cancel) (recoup.ActionResult, error) {
			return d.result(d.cancel(ctx, r, "update")), nil
		}, func(_ workflow.Context, r recoup.Cancel) error { return d.validateActive() }},
		{recoup.UpdateActNow, func(ctx workflow.Context, r recoup.ActNowRequest) (recoup.ActionResult, error) {
			return d.result(d.actNow(ctx, r, "update")), nil
		}, func(_ workflow.Context, r recoup.ActNowRequest) error { return d.validateActNow(r) }},
		{recoup.UpdateSetChannel, func(ctx workflow.Context, r recoup.SetChannelRequest) (recoup.ActionResult, error) {
			return d.result(d.setNextChannel(ctx, r, "update")), nil
		}, func(_ workflow.Context, r recoup.SetChannelRequest) error { return d.validateSetChannel(r) }},
	}
	for _, h := range handlers {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name, h.fn, workflow.UpdateHandlerOptions{Validator: h.validator}); err != nil {
			return err
		}
	}
	return nil
}

func (d *dunning) result(msg string) recoup.ActionResult {
	return recoup.ActionResult{Status: d.state.Status, Message: msg}
}

func (d *dunning) record(ctx workflow.Context, action, by, reason, via string) {
	d.state.Actions = append(d.state.Actions, recoup.ActionRecord{Action: action, By: by, Reason: reason,
		At: workflow.Now(ctx), Via: via})
	d.log.Info("support action", "action", action, "by", by, "via", via)
}

func (d *dunning) validateActive() error {
	if d.state.Status.Ended() {
		return rejected("the run has already ended (%s)", d.state.Status)
	}
	return nil
}

func (d *dunning) validatePause(recoup.Pause) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	if d.state.Status == recoup.StatusPaused {
		return rejected("the run is already paused")
	}
	return nil
}

func (d *dunning) validateResume(recoup.Resume) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	if d.state.Status != recoup.StatusPaused {
		return rejected("the run is not paused")
	}
	return nil
}

// validateActNow accepts act-now only while the run waits for a step, a failure-spike hold
// or the final retry outcome: never to skip the customer's allowed hours, and never while an
// activity runs (it would make a later wait end at once).
func (d *dunning) validateActNow(recoup.ActNowRequest) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	switch {
	case d.state.Status == recoup.StatusPaused:
		return rejected("the run is paused; resume it first")
	case d.waiting == waitHours:
		return rejected("the run is waiting for the customer's allowed hours (%s), which act-now does not override", d.state.NextActionAt.UTC().Format(time.RFC3339))
	case !d.waiting.actNowEnds():
		return rejected("the run is not waiting (it is working on step %d); act-now applies only to a wait in progress", d.state.Step)
	case d.actNowPending:
		return rejected("act-now was already requested")
	}
	return nil
}

func (d *dunning) validateSetChannel(r recoup.SetChannelRequest) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	if !r.Channel.Valid() {
		return rejected("unknown channel %q: use email or sms", r.Channel)
	}
	if slices.Contains(d.state.OptedOut, r.Channel) {
		return rejected("the customer opted out of %s", r.Channel)
	}
	if slices.Contains(d.excluded, r.Channel) {
		return rejected("%s cannot reach this customer in this run", r.Channel)
	}
	return nil
}

func (d *dunning) pause(ctx workflow.Context, r recoup.Pause, via string) string {
	d.pausedAt = workflow.Now(ctx)
	d.setStatus(ctx, recoup.StatusPaused, r.Reason)
	d.record(ctx, "pause", r.By, r.Reason, via)
	return "paused: nothing is sent until the run is resumed"
}

func (d *dunning) resume(ctx workflow.Context, r recoup.Resume, via string) string {
	paused := workflow.Now(ctx).Sub(d.pausedAt)
	d.pausedFor += paused
	if d.state.Hold != nil {
		d.setStatus(ctx, recoup.StatusHeld, "failure-spike incident "+d.state.Hold.IncidentID)
	} else {
		d.setStatus(ctx, recoup.StatusActive, "")
	}
	d.record(ctx, "resume", r.By, r.Reason, via)
	return fmt.Sprintf("resumed: later steps move back by the %s paused", paused.Round(1e9))
}

func (d *dunning) cancel(ctx workflow.Context, r recoup.Cancel, via string) string {
	reason := r.Reason
	if reason == "" {
		reason = "canceled"
	}
	d.setStatus(ctx, recoup.StatusCanceled, reason)
	if r.By != "" || via == "update" {
		d.record(ctx, "cancel", r.By, reason, via)
	}
	return reason
}

func (d *dunning) actNow(ctx workflow.Context, r recoup.ActNowRequest, via string) string {
	d.actNowPending = true
	d.record(ctx, "act-now", r.By, r.Reason, via)
	what := d.state.NextAction
	if what == "" {
		what = "the next wait"
	}
	return "acting now: " + what + " is skipped"
}

func (d *dunning) setNextChannel(ctx workflow.Context, r recoup.SetChannelRequest, via string) string {
	d.state.NextChannel = r.Channel
	d.record(ctx, "set-next-channel "+string(r.Channel), r.By, r.Reason, via)
	d.updateDetails(ctx)
	return "the next message goes by " + string(r.Channel)
}
