package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
)

// onSignal makes the run apply every signal of one name with apply. A payload that cannot be
// decoded into T (support typing "sms" instead of {"channel":"sms"}) is recorded as refused
// with the reason, and every later signal of every name is still applied (invariant I5).
func onSignal[T any](d *dunning, ctx workflow.Context, sel workflow.Selector, name string, apply func(workflow.Context, T)) {
	ch := workflow.GetSignalChannel(ctx, name)
	d.signalChans = append(d.signalChans, ch)
	sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
		var raw converter.RawValue
		if !c.ReceiveAsync(&raw) {
			return // the SDK dropped a payload its codec could not read (counted in its metrics)
		}
		var v T
		if err := converter.GetDefaultDataConverter().FromPayload(raw.Payload(), &v); err != nil {
			d.refuse(ctx, name, fmt.Sprintf("refused: the payload is not a %T: %v", v, err))
			return
		}
		apply(ctx, v)
	})
}

// signalsPending reports whether any signal waits to be applied.
func (d *dunning) signalsPending() bool {
	for _, c := range d.signalChans {
		if c.Len() > 0 {
			return true
		}
	}
	return false
}

// applyPendingSignals lets every signal already delivered be applied before the run decides
// something (its outcome, a send): a timer and a settle that arrive in the same workflow
// task must not be decided in the timer's favour.
func (d *dunning) applyPendingSignals(ctx workflow.Context) {
	if d.signalsPending() {
		_ = workflow.Await(ctx, func() bool { return !d.signalsPending() })
	}
}

// startSignals applies every signal to the run's state for as long as the run lives. The
// order of the listeners matters to replay: of the signals delivered together, those of
// the first listener apply first.
func (d *dunning) startSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	onSignal(d, ctx, sel, recoup.SignalPaymentFailed, d.onPaymentFailed)
	onSignal(d, ctx, sel, recoup.SignalRetryResult, d.onRetryResult)
	onSignal(d, ctx, sel, recoup.SignalRecovered, func(ctx workflow.Context, s recoup.Recovered) {
		if r := d.receive(ctx, recoup.SignalRecovered, s.EventID, s.OccurredAt, settles); r != nil {
			d.setStatus(ctx, recoup.StatusRecovered, "paid another way")
		}
	})
	// Support actions, as signals (their names are those of their Updates).
	sa := d.support
	for _, h := range []supportHandler{sa.cancel, sa.pause, sa.resume, sa.actNow, sa.setChannel} {
		h.listen(ctx, sel)
	}
	onSignal(d, ctx, sel, recoup.SignalOptOut, d.onOptOut)
	onSignal(d, ctx, sel, recoup.SignalReleaseHold, d.onReleaseHold)
	// Added later: listeners are appended so that recorded runs apply signals in their order.
	sa.resolve.listen(ctx, sel)
	onSignal(d, ctx, sel, recoup.SignalReply, d.onReply)
	for _, h := range []supportHandler{sa.approve, sa.reject, sa.edit} {
		h.listen(ctx, sel)
	}
	onSignal(d, ctx, sel, recoup.SignalPaymentMethodUpdated, d.onPaymentMethodUpdated)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
}

// signalKind says how a signal's occurred_at matters.
type signalKind int

const (
	other    signalKind = iota // order does not matter
	failure                    // a failure: ignored when older than the newest applied failure
	settles                    // a success, recovery or cancel: applies whatever its time
	pausing                    // a pause: ignored when dated before a resume already received
	resuming                   // a resume: a pause dated before it is stale
)

// refuse records a signal that could not be applied at all.
func (d *dunning) refuse(ctx workflow.Context, name, why string) {
	d.addSignalRecord(recoup.SignalRecord{Name: name, ReceivedAt: workflow.Now(ctx), Note: why})
	d.log.Warn("signal refused", "signal", name, "why", why)
}

func (d *dunning) addSignalRecord(r recoup.SignalRecord) *recoup.SignalRecord {
	if len(d.state.Signals) >= maxSignalRecords {
		drop := len(d.state.Signals) - maxSignalRecords + 1
		d.state.Signals = slices.Delete(d.state.Signals, 0, drop)
		d.state.SignalsOmitted += drop
	}
	d.state.Signals = append(d.state.Signals, r)
	return &d.state.Signals[len(d.state.Signals)-1]
}

// receive records a signal and decides whether it applies. It returns the record (already
// appended to the state, so the caller may amend it) when the signal applies, and nil when
// it is a duplicate (same event id), a stale failure (older than the newest applied one) or
// arrives after the run ended. A settling event is never stale: once it is received no
// message leaves (invariant I1). An occurred_at further in the future than the allowed
// clock skew is clamped for ordering, and the clamp noted.
func (d *dunning) receive(ctx workflow.Context, name, eventID string, occurredAt time.Time, kind signalKind) *recoup.SignalRecord {
	now := workflow.Now(ctx)
	r := d.addSignalRecord(recoup.SignalRecord{Name: name, EventID: eventID, OccurredAt: occurredAt, ReceivedAt: now})
	if !d.settleAnyTime && kind == settles {
		kind = failure // runs recorded before "settle-any-time" replay the old rule
	}
	ordered := clampFuture(occurredAt, now)
	switch {
	case eventID != "" && eventID == d.in.Failure.EventID:
		r.Note = "the event that started this run"
	case eventID != "" && d.seen[eventID]:
		r.Note = "duplicate"
	case d.state.Status.Ended():
		r.Note = "run already " + string(d.state.Status)
	case kind == failure && !occurredAt.IsZero() && ordered.Before(d.state.LastApplied):
		r.Note = "stale: older than the newest applied failure"
	case kind == pausing && !occurredAt.IsZero() && ordered.Before(d.state.LastResumed) &&
		version(ctx, ChangePauseOrder, 1) >= 1:
		r.Note = "stale: dated before a resume already received"
	default:
		d.remember(eventID)
		if kind == resuming && !occurredAt.IsZero() && ordered.After(d.state.LastResumed) {
			d.state.LastResumed = ordered // even when the resume is refused (not paused yet)
		}
		if kind == failure && ordered.After(d.state.LastApplied) {
			d.state.LastApplied = ordered
		}
		if !ordered.Equal(occurredAt) {
			r.Note = "occurred_at is in the future; ordered at the run's clock + " + maxClockSkew.String()
		}
		r.Applied = true
		return r
	}
	d.remember(eventID)
	d.log.Info("signal ignored", "signal", name, "event_id", eventID, "why", r.Note)
	return nil
}

func (d *dunning) onPaymentFailed(ctx workflow.Context, s recoup.PaymentFailed) {
	if r := d.receive(ctx, recoup.SignalPaymentFailed, s.EventID, s.OccurredAt, failure); r != nil {
		d.state.Failures++
		if s.FailureCode != "" {
			d.failureCode = s.FailureCode
		}
		r.Note = joinNote(r.Note, "failure "+s.FailureCode)
		d.onRetryFailure(ctx)
		d.recordAttempt(recoup.RetryAttempt{EventID: s.EventID, At: clampFuture(s.OccurredAt, workflow.Now(ctx)), Code: s.FailureCode, AdviceCode: s.AdviceCode})
	}
}

func (d *dunning) onRetryResult(ctx workflow.Context, s recoup.RetryResult) {
	kind := failure
	if s.Succeeded {
		kind = settles
	}
	r := d.receive(ctx, recoup.SignalRetryResult, s.EventID, s.OccurredAt, kind)
	if r == nil {
		return
	}
	d.recordAttempt(recoup.RetryAttempt{EventID: s.EventID, At: clampFuture(s.OccurredAt, workflow.Now(ctx)), Code: s.FailureCode, AdviceCode: s.AdviceCode, Succeeded: s.Succeeded})
	if s.Succeeded {
		r.Note = joinNote(r.Note, "retry "+s.AttemptID+" succeeded")
		d.setStatus(ctx, recoup.StatusRecovered, "retry "+s.AttemptID+" succeeded")
		return
	}
	d.state.Failures++
	if s.FailureCode != "" {
		d.failureCode = s.FailureCode
	}
	r.Note = joinNote(r.Note, "retry "+s.AttemptID+" failed: "+s.FailureCode)
	d.onRetryFailure(ctx)
}

// onPaymentMethodUpdated records billing's payment_method.updated for the retry advice
// (recordCardUpdate).
func (d *dunning) onPaymentMethodUpdated(ctx workflow.Context, s recoup.PaymentMethodUpdated) {
	r := d.receive(ctx, recoup.SignalPaymentMethodUpdated, s.EventID, s.OccurredAt, other)
	if r == nil {
		return
	}
	d.recordCardUpdate(ctx, s)
	r.Note = joinNote(r.Note, map[bool]string{false: "payment method updated", true: "payment method updated; billing asks for a retry advice"}[s.RetryRequested])
}

func (d *dunning) onOptOut(ctx workflow.Context, s recoup.OptOut) {
	r := d.receive(ctx, recoup.SignalOptOut, s.EventID, s.OccurredAt, other)
	if r == nil {
		return
	}
	if !s.Channel.Valid() {
		r.Applied, r.Note = false, "unknown channel "+string(s.Channel)
		return
	}
	r.Note = joinNote(r.Note, "opted out of "+string(s.Channel))
	if !slices.Contains(d.state.OptedOut, s.Channel) {
		d.state.OptedOut = append(d.state.OptedOut, s.Channel)
	}
	if d.state.NextChannel == s.Channel {
		d.state.NextChannel = ""
	}
	d.exclude(s.Channel)
	d.updateDetails(ctx)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return b + " (" + a + ")"
}

// settledBy reports the settle that an activity found recorded for the invoice but not yet
// signalled to the run (recoup.ErrTypeSettled: the relay is behind).
func settledBy(err error) (recoup.SettledBy, bool) {
	var appErr *temporal.ApplicationError
	var by recoup.SettledBy
	if !errors.As(err, &appErr) || appErr.Type() != recoup.ErrTypeSettled || appErr.Details(&by) != nil || by.EventID == "" {
		return by, false
	}
	return by, true
}

// applySettledBy applies a settle an activity found recorded as its signal would: the run
// ends recovered or canceled, and the signal, when it arrives, is a duplicate.
func (d *dunning) applySettledBy(ctx workflow.Context, by recoup.SettledBy) {
	name := recoup.SignalRecovered
	if by.Type == recoup.EventCancel {
		name = recoup.SignalCancel
	}
	r := d.receive(ctx, name, by.EventID, time.Time{}, settles)
	if r == nil {
		return
	}
	r.Note = joinNote(r.Note, "recorded by billing ("+by.Type+") before it reached the run")
	if name == recoup.SignalCancel {
		d.cancel(ctx, recoup.Cancel{EventID: by.EventID, Reason: "canceled by billing"}, "signal")
		return
	}
	d.setStatus(ctx, recoup.StatusRecovered, "paid ("+by.Type+" "+by.EventID+")")
}
