package workflows_test

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// A send whose outcome is unknown waits for its reconcile window (act-now cannot end it
// early), then asks the send activity once more with Resend — which settles it from the
// provider's events or sends it again. A resend whose outcome is unknown too is never
// asked about again: at most two attempts at a step, never a third.
func TestUnknownOutcomeIsResolvedFromEvidenceOnceAfterTheWindow(t *testing.T) {
	w := newWorld(t)
	const window = 30 * time.Minute
	w.sendRes = func(in activities.SendInput, now time.Time) *activities.SendResult {
		if in.Step != 1 {
			return nil
		}
		if in.Resend {
			return &activities.SendResult{Delivery: recoup.DeliveryReconcile} // the resend's outcome is unknown too
		}
		return &activities.SendResult{Delivery: recoup.DeliveryReconcile, ReconcileAt: now.Add(window)}
	}
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	var step1 []activities.SendInput
	var times []time.Duration
	for i, s := range w.sends {
		if s.Step == 1 {
			step1 = append(step1, s)
			times = append(times, w.sendTimes[i])
		}
	}
	if len(step1) != 2 || step1[0].Resend || !step1[1].Resend || step1[0].IdempotencyKey != step1[1].IdempotencyKey {
		t.Fatalf("step 1 sends = %+v, want the send, then one Resend of the same key", step1)
	}
	if times[1]-times[0] < window {
		t.Errorf("the Resend came %s after the send, want at least the %s window", times[1]-times[0], window)
	}
	var msgs int
	for _, m := range st.Messages {
		if m.Step == 1 {
			msgs++
		}
	}
	if msgs != 2 {
		t.Errorf("step 1 has %d message records, want 2 (reconcile, then the resend's outcome)", msgs)
	}
}

// Evidence settles the message: the Resend call finds it sent and the run goes on as with
// any sent message.
func TestUnknownOutcomeSettledByEvidenceGoesOn(t *testing.T) {
	w := newWorld(t)
	w.sendRes = func(in activities.SendInput, now time.Time) *activities.SendResult {
		if in.Step == 1 && !in.Resend {
			return &activities.SendResult{Delivery: recoup.DeliveryReconcile, ReconcileAt: now.Add(30 * time.Minute)}
		}
		return nil // sent (found sent by evidence for the Resend)
	}
	w.at(3*day+time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	if len(w.sends) != 3 || !w.sends[1].Resend || w.sends[2].Step != 2 {
		t.Fatalf("sends = %+v, want step 1, its Resend, step 2", w.sends)
	}
	if last := st.Messages[1]; last.Step != 1 || last.Delivery != "sent" {
		t.Errorf("step 1's second record = %+v, want sent", last)
	}
}
