package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
)

// receiveSignals applies every signal to the run's state for as long as the run lives.
func (d *dunning) receiveSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalPaymentFailed), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.PaymentFailed
		c.Receive(ctx, &s)
		d.onPaymentFailed(ctx, s)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalRetryResult), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.RetryResult
		c.Receive(ctx, &s)
		d.onRetryResult(ctx, s)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalRecovered), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.Recovered
		c.Receive(ctx, &s)
		if r := d.receive(ctx, recoup.SignalRecovered, s.EventID, s.OccurredAt, true); r != nil {
			d.setStatus(ctx, recoup.StatusRecovered, "paid another way")
		}
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalCancel), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.Cancel
		c.Receive(ctx, &s)
		if r := d.receive(ctx, recoup.SignalCancel, s.EventID, s.OccurredAt, false); r != nil {
			r.Note = d.cancel(ctx, s, "signal")
		}
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalPause), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.Pause
		c.Receive(ctx, &s)
		if r := d.receive(ctx, recoup.SignalPause, s.EventID, s.OccurredAt, false); r != nil {
			if err := d.validatePause(s); err != nil {
				r.Applied, r.Note = false, err.Error()
				return
			}
			r.Note = d.pause(ctx, s, "signal")
		}
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalResume), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.Resume
		c.Receive(ctx, &s)
		if r := d.receive(ctx, recoup.SignalResume, s.EventID, s.OccurredAt, false); r != nil {
			if err := d.validateResume(s); err != nil {
				r.Applied, r.Note = false, err.Error()
				return
			}
			r.Note = d.resume(ctx, s, "signal")
		}
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalActNow), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.ActNowRequest
		c.Receive(ctx, &s)
		r := d.receive(ctx, recoup.SignalActNow, "", time.Time{}, false)
		if r == nil {
			return
		}
		if err := d.validateActNow(s); err != nil {
			r.Applied, r.Note = false, err.Error()
			return
		}
		r.Note = d.actNow(ctx, s, "signal")
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalSetChannel), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.SetChannelRequest
		c.Receive(ctx, &s)
		r := d.receive(ctx, recoup.SignalSetChannel, "", time.Time{}, false)
		if r == nil {
			return
		}
		if err := d.validateSetChannel(s); err != nil {
			r.Applied, r.Note = false, err.Error()
			return
		}
		r.Note = d.setNextChannel(ctx, s, "signal")
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalOptOut), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.OptOut
		c.Receive(ctx, &s)
		d.onOptOut(ctx, s)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, recoup.SignalReleaseHold), func(c workflow.ReceiveChannel, _ bool) {
		var s recoup.ReleaseHold
		c.Receive(ctx, &s)
		d.onReleaseHold(ctx, s)
	})
	for {
		sel.Select(ctx)
	}
}

// receive records a signal and decides whether it applies. It returns the record (already
// appended to the state, so the caller may amend it) when the signal applies, and nil when
// it is a duplicate (same event id), stale (a payment-state event older than the newest
// applied one) or arrives after the run ended.
func (d *dunning) receive(ctx workflow.Context, name, eventID string, occurredAt time.Time, paymentState bool) *recoup.SignalRecord {
	d.state.Signals = append(d.state.Signals, recoup.SignalRecord{
		Name: name, EventID: eventID, OccurredAt: occurredAt, ReceivedAt: workflow.Now(ctx),
	})
	r := &d.state.Signals[len(d.state.Signals)-1]
	switch {
	case eventID != "" && eventID == d.in.Failure.EventID:
		r.Note = "the event that started this run"
	case eventID != "" && d.seen[eventID]:
		r.Note = "duplicate"
	case d.state.Status.Ended():
		r.Note = "run already " + string(d.state.Status)
	case paymentState && !occurredAt.IsZero() && occurredAt.Before(d.state.LastApplied):
		r.Note = "stale: older than the last applied event"
	default:
		if eventID != "" {
			d.seen[eventID] = true
		}
		if paymentState && occurredAt.After(d.state.LastApplied) {
			d.state.LastApplied = occurredAt
		}
		r.Applied = true
		return r
	}
	if eventID != "" {
		d.seen[eventID] = true
	}
	d.log.Info("signal ignored", "signal", name, "event_id", eventID, "why", r.Note)
	return nil
}

func (d *dunning) onPaymentFailed(ctx workflow.Context, s recoup.PaymentFailed) {
	if r := d.receive(ctx, recoup.SignalPaymentFailed, s.EventID, s.OccurredAt, true); r != nil {
		d.state.Failures++
		if s.FailureCode != "" {
			d.failureCode = s.FailureCode
		}
		r.Note = "failure " + s.FailureCode
	}
}

func (d *dunning) onRetryResult(ctx workflow.Context, s recoup.RetryResult) {
	r := d.receive(ctx, recoup.SignalRetryResult, s.EventID, s.OccurredAt, true)
	if r == nil {
		return
	}
	if s.Succeeded {
		r.Note = "retry " + s.AttemptID + " succeeded"
		d.setStatus(ctx, recoup.StatusRecovered, "retry "+s.AttemptID+" succeeded")
		return
	}
	d.state.Failures++
	if s.FailureCode != "" {
		d.failureCode = s.FailureCode
	}
	r.Note = "retry " + s.AttemptID + " failed: " + s.FailureCode
}

func (d *dunning) onOptOut(ctx workflow.Context, s recoup.OptOut) {
	r := d.receive(ctx, recoup.SignalOptOut, s.EventID, s.OccurredAt, false)
	if r == nil {
		return
	}
	if !s.Channel.Valid() {
		r.Applied, r.Note = false, "unknown channel "+string(s.Channel)
		return
	}
	r.Note = "opted out of " + string(s.Channel)
	if !slices.Contains(d.state.OptedOut, s.Channel) {
		d.state.OptedOut = append(d.state.OptedOut, s.Channel)
	}
	d.exclude(s.Channel)
}
