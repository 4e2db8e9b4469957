package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
)

// rejected is a support action's refusal by its validator (recoup.ErrTypeRejected). Each
// action is an Update and a signal of the same name; the signal path applies the same
// validation and records the rejection instead of returning it.
func rejected(format string, a ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, a...), recoup.ErrTypeRejected)
}

// supportAction declares one support action once: its name (an Update, and a signal of the
// same name), payload type T, validator and handler. Both registrations come from it.
type supportAction[T any] struct {
	d    *dunning
	name string
	// kind says how the signal's occurred_at matters; event gives the signal's event id and
	// occurred_at (nil: neither).
	kind     signalKind
	event    func(T) (eventID string, occurredAt time.Time)
	validate func(T) error
	// apply changes the run and says what it did; via is "update" or "signal".
	apply func(ctx workflow.Context, r T, via string) string
	// run, set instead of apply, may wait (an activity) and refuse after validation; as a
	// signal it runs in its own coroutine, so that it never holds up other signals.
	run func(ctx workflow.Context, r T, via string) (string, error)
	// claim, when set, runs in the handler at once, before apply or run, without yielding:
	// it checks again what another handler may have changed since validation (two Updates
	// validated in one workflow task) and takes the action's place (an edit being checked),
	// so that of two answers to one held message the first accepted wins.
	claim func(T) error
}

// supportHandler is a supportAction of any payload type.
type supportHandler interface {
	registerUpdate(ctx workflow.Context) error
	listen(ctx workflow.Context, sel workflow.Selector)
}

// registerUpdate registers the action as an Update: a rejection is returned to the caller.
func (s supportAction[T]) registerUpdate(ctx workflow.Context) error {
	return setUpdate(ctx, s.name, s.validate, func(ctx workflow.Context, r T) (recoup.ActionResult, error) {
		if s.claim != nil {
			if err := s.claim(r); err != nil {
				return s.d.result(""), err
			}
		}
		if s.run != nil {
			msg, err := s.run(ctx, r, "update")
			return s.d.result(msg), err
		}
		return s.d.result(s.apply(ctx, r, "update")), nil
	})
}

// listen applies the action's signals with the same validation, recording a rejection
// instead of returning it.
func (s supportAction[T]) listen(ctx workflow.Context, sel workflow.Selector) {
	onSignal(s.d, ctx, sel, s.name, func(ctx workflow.Context, r T) {
		var eventID string
		var occurredAt time.Time
		if s.event != nil {
			eventID, occurredAt = s.event(r)
		}
		rec := s.d.receive(ctx, s.name, eventID, occurredAt, s.kind)
		if rec == nil {
			return
		}
		err := s.validate(r)
		if err == nil && s.claim != nil {
			err = s.claim(r) // before run's coroutine starts: a later signal sees the claim
		}
		if err != nil {
			rec.Applied, rec.Note = false, err.Error()
			return
		}
		if s.run != nil {
			rec.Note = "being checked; the outcome is in the run's approvals and actions"
			workflow.Go(ctx, func(ctx workflow.Context) {
				if _, err := s.run(ctx, r, "signal"); err != nil {
					s.d.refuse(ctx, s.name, err.Error())
				}
			})
			return
		}
		rec.Note = s.apply(ctx, r, "signal")
	})
}

// supportActions are the run's support actions, each declared once.
type supportActions struct {
	pause, resume, cancel, actNow, setChannel, resolve supportHandler
	approve, reject, edit                              supportHandler
}

func (d *dunning) supportActions() supportActions {
	return supportActions{
		// Pauses and resumes apply in the order of their dates: a pause dated before a
		// resume already received (which the relay delivered first, or which was refused
		// as "not paused") is stale, and never holds the run for ever.
		pause: supportAction[recoup.Pause]{d: d, name: recoup.UpdatePause, kind: pausing,
			event:    func(r recoup.Pause) (string, time.Time) { return r.EventID, r.OccurredAt },
			validate: d.validatePause, apply: d.pause},
		resume: supportAction[recoup.Resume]{d: d, name: recoup.UpdateResume, kind: resuming,
			event:    func(r recoup.Resume) (string, time.Time) { return r.EventID, r.OccurredAt },
			validate: d.validateResume, apply: d.resume},
		// A cancel signal (from billing or support) settles the run: it applies whatever
		// its occurred_at.
		cancel: supportAction[recoup.Cancel]{d: d, name: recoup.UpdateCancel, kind: settles,
			event:    func(r recoup.Cancel) (string, time.Time) { return r.EventID, r.OccurredAt },
			validate: func(recoup.Cancel) error { return d.validateActive() }, apply: d.cancel},
		actNow: supportAction[recoup.ActNowRequest]{d: d, name: recoup.UpdateActNow, kind: other,
			validate: d.validateActNow, apply: d.actNow},
		setChannel: supportAction[recoup.SetChannelRequest]{d: d, name: recoup.UpdateSetChannel, kind: other,
			validate: d.validateSetChannel, apply: d.setNextChannel},
		// Appended: registration order decides which of two simultaneous actions applies first.
		resolve: supportAction[recoup.Resolve]{d: d, name: recoup.UpdateResolve, kind: other,
			validate: d.validateResolve, apply: d.resolve},
		// Approvals of a held message (approvals.go).
		// Exactly one answer applies: each claims the held message in its handler.
		approve: supportAction[recoup.Approval]{d: d, name: recoup.UpdateApprove, kind: other,
			validate: d.validateApprove, claim: d.validateApprove, apply: d.approve},
		reject: supportAction[recoup.Approval]{d: d, name: recoup.UpdateReject, kind: other,
			validate: d.validateReject, claim: d.validateReject, apply: d.reject},
		edit: supportAction[recoup.ApprovalEdit]{d: d, name: recoup.UpdateEdit, kind: other,
			validate: d.validateEdit, claim: d.claimEdit, run: d.edit},
	}
}

// registerUpdates registers every support action as an Update. The order matters to replay:
// updates delivered before the handlers exist run in the order their handlers register.
func (d *dunning) registerUpdates(ctx workflow.Context) error {
	sa := d.support
	for _, h := range []supportHandler{sa.pause, sa.resume, sa.cancel, sa.actNow, sa.setChannel, sa.resolve, sa.approve, sa.reject, sa.edit} {
		if err := h.registerUpdate(ctx); err != nil {
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
	switch {
	case d.state.Status == recoup.StatusPaused && d.state.PausedUntil.IsZero():
		return rejected("the run is already paused")
	case d.state.Status == recoup.StatusPaused: // a reply's pause: support's pause takes over
	case d.state.Status == recoup.StatusNeedsAttention:
		return rejected("the run needs attention (%s): resolve, resume or cancel it", d.state.Reason)
	}
	return nil
}

func (d *dunning) validateResume(recoup.Resume) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	if !d.pausedLike() {
		return rejected("the run is not paused")
	}
	return nil
}

// maxResolveNote bounds a resolve's note.
const maxResolveNote = 500

func (d *dunning) validateResolve(r recoup.Resolve) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	switch n := len([]rune(r.Note)); {
	case d.state.Status != recoup.StatusNeedsAttention:
		return rejected("the run does not need attention (it is %s)", d.state.Status)
	case n == 0 || len(strings.TrimSpace(r.Note)) == 0:
		return rejected("a note is required: say how the customer's reply was handled")
	case n > maxResolveNote:
		return rejected("the note has %d characters, more than %d", n, maxResolveNote)
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
	case d.state.Status == recoup.StatusNeedsAttention:
		return rejected("the run needs attention; resolve or resume it first")
	case d.state.Approval != nil:
		return rejected("the run holds step %d's message for approval: approve, reject or edit it", d.state.Approval.Step)
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

// pause: support's pause holds until support resumes. On a run a reply paused it takes
// over: the reply's end date no longer applies (the pause counts from the reply's).
func (d *dunning) pause(ctx workflow.Context, r recoup.Pause, via string) string {
	if d.state.Status == recoup.StatusPaused && !d.state.PausedUntil.IsZero() {
		d.state.PausedUntil = time.Time{}
		d.pauseGen++
		d.state.Reason = r.Reason
		d.updateDetails(ctx)
		d.record(ctx, "pause", r.By, r.Reason, via)
		return "paused: support's pause replaces the customer's; nothing is sent until the run is resumed"
	}
	d.pausedAt = workflow.Now(ctx)
	d.setStatus(ctx, recoup.StatusPaused, r.Reason)
	d.record(ctx, "pause", r.By, r.Reason, via)
	return "paused: nothing is sent until the run is resumed"
}

func (d *dunning) resume(ctx workflow.Context, r recoup.Resume, via string) string {
	paused := workflow.Now(ctx).Sub(d.pausedAt)
	d.pausedFor += paused
	if !d.state.PausedUntil.IsZero() || d.state.Status == recoup.StatusNeedsAttention {
		d.state.PausedUntil = time.Time{}
		d.pauseGen++
	}
	d.goOn(ctx)
	d.record(ctx, "resume", r.By, r.Reason, via)
	return fmt.Sprintf("resumed: later steps move back by the %s paused", paused.Round(1e9))
}

// resolve: support handled the reply that needed attention; the run goes on where it was,
// unless the customer's newest promise is still in the future: then it pauses until the
// day after it (support can resume to send at once).
func (d *dunning) resolve(ctx workflow.Context, r recoup.Resolve, via string) string {
	promise, pending := d.promiseAfterResolve(workflow.Now(ctx))
	if pending {
		d.record(ctx, "resolve", r.By, r.Note, via)
		d.pauseForReply(ctx, promise.PauseUntil, "customer promised to pay on "+promise.PromisedOn)
		return "resolved; the customer's promise applies: paused until " + promise.PauseUntil.Format(time.RFC3339)
	}
	msg := d.resume(ctx, recoup.Resume{By: r.By, Reason: r.Note}, via)
	d.state.Actions[len(d.state.Actions)-1].Action = "resolve"
	return "resolved; " + msg
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
