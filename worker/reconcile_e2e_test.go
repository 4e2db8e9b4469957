package main

// End to end on a Temporal dev server: a send whose outcome is unknown is settled from the
// provider's evidence — never resent when the provider accepted it, resent exactly once
// when it provably did not.

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// reconcileHarness is a harness whose runs have two steps an hour apart and a reconcile
// window of a second.
func reconcileHarness(t *testing.T) *workertest.Harness {
	return workertest.Start(t, workertest.Options{Configure: func(a *activities.Activities) {
		a.Dunning.ReconcileWindow = time.Second
	}})
}

func stepOneMessages(st recoup.State) []recoup.MessageRecord {
	var out []recoup.MessageRecord
	for _, m := range st.Messages {
		if m.Step == 1 {
			out = append(out, m)
		}
	}
	return out
}

// SendGrid accepts step 1's email and reports it (its "processed" event, recorded through
// the store as the Event Webhook would), but the answer the worker gets is a 502 from a
// gateway: the send goes to reconcile, not retried; after the window the evidence settles
// it as sent, and nothing is sent again.
func TestAcceptedSendAnswered502IsSettledByItsEventNotResent(t *testing.T) {
	e := reconcileHarness(t)
	key := recoup.WorkflowID("inv_rc_1") + "/step-1/email"
	var answered atomic.Bool
	e.Mail.Respond(func(r fakes.Request) fakes.Response {
		if r.Key != key || !answered.CompareAndSwap(false, true) {
			return fakes.Response{}
		}
		k := r.Key
		if _, err := e.Store.RecordProviderEvent(context.Background(), postgres.ProviderEvent{Provider: "sendgrid",
			ProviderEventID: "sg_rc_1_processed", IdempotencyKey: k, Kind: recoup.DeliveryAccepted,
			ProviderMessageID: "sg-" + k, OccurredAt: time.Now().UTC(), Body: []byte(`{"event":"processed"}`)}); err != nil {
			t.Errorf("record the processed event: %v", err)
		}
		return fakes.Response{Status: http.StatusBadGateway, Took: true} // SendGrid took it; a gateway lost its 202
	})
	e.Event(workertest.Failed("evt_rc_1", "inv_rc_1", "cus_rc_1", time.Now().UTC()))
	e.Eventually("step 1 settled from the evidence", func() bool {
		ms := stepOneMessages(e.State("inv_rc_1"))
		return len(ms) == 2
	})
	ms := stepOneMessages(e.State("inv_rc_1"))
	if ms[0].Delivery != postgres.SendReconcile || ms[1].Delivery != postgres.SendSent || ms[1].IdempotencyKey != key {
		t.Fatalf("step 1 messages = %+v, want reconcile, then sent by evidence under the same key", ms)
	}
	if n, r := e.Mail.Accepted(key), e.Mail.RequestsFor(recoup.ResendKey(key)); n != 1 || r != 0 || e.Mail.RequestsFor(key) != 1 {
		t.Fatalf("provider accepted %d under the key, got %d requests under the resend key; want 1 and 0 (no resend)", n, r)
	}
	p, err := e.Store.GetProviderStatus(context.Background(), key)
	if err != nil || p.Status != postgres.SendSent || p.Evidence == "" {
		t.Fatalf("send row = %+v, %v; want sent with its evidence", p, err)
	}
	cancelRun(e, "inv_rc_1")
	e.Record("inv_rc_1", "reconcile_settled")
}

// SendGrid never accepted step 1's email (a 502 before accepting, and no event names it):
// after the window the step is sent again once, under the resend key, and the first key
// is superseded. The resend is answered 502 too, and is still never sent a third time.
func TestNeverAcceptedSendIsResentExactlyOnceAfterTheWindow(t *testing.T) {
	e := reconcileHarness(t)
	key := recoup.WorkflowID("inv_rc_2") + "/step-1/email"
	e.Mail.Respond(func(r fakes.Request) fakes.Response {
		if r.Key == key {
			return fakes.Response{Status: http.StatusBadGateway} // not taken
		}
		return fakes.Response{}
	})
	e.Event(workertest.Failed("evt_rc_2", "inv_rc_2", "cus_rc_2", time.Now().UTC()))
	e.Eventually("step 1 resent", func() bool { return len(stepOneMessages(e.State("inv_rc_2"))) == 2 })
	ms := stepOneMessages(e.State("inv_rc_2"))
	if ms[0].Delivery != postgres.SendReconcile || ms[1].Delivery != postgres.SendSent {
		t.Fatalf("step 1 messages = %+v, want reconcile, then sent", ms)
	}
	resend := recoup.ResendKey(key)
	if ms[1].IdempotencyKey != resend {
		t.Errorf("the resend is recorded with key %q, want %q", ms[1].IdempotencyKey, resend)
	}
	if e.Mail.Accepted(key) != 0 || e.Mail.Accepted(resend) != 1 || e.Mail.RequestsFor(key) != 1 || e.Mail.RequestsFor(resend) != 1 {
		t.Fatalf("provider: key %d accepted/%d requests, resend %d accepted/%d requests; want 0/1 and 1/1",
			e.Mail.Accepted(key), e.Mail.RequestsFor(key), e.Mail.Accepted(resend), e.Mail.RequestsFor(resend))
	}
	if p, _ := e.Store.GetProviderStatus(context.Background(), key); p.Status != postgres.SendSuperseded {
		t.Errorf("first key's row = %+v, want superseded", p)
	}
	cancelRun(e, "inv_rc_2")
	e.Record("inv_rc_2", "reconcile_resent")

	// The resend's own outcome unknown: never a third message.
	key3 := recoup.WorkflowID("inv_rc_3") + "/step-1/email"
	e.Mail.Respond(func(r fakes.Request) fakes.Response {
		if r.Key == key3 || r.Key == recoup.ResendKey(key3) {
			return fakes.Response{Status: http.StatusBadGateway}
		}
		return fakes.Response{}
	})
	e.Event(workertest.Failed("evt_rc_3", "inv_rc_3", "cus_rc_3", time.Now().UTC()))
	e.Eventually("step 1's resend answered", func() bool { return len(stepOneMessages(e.State("inv_rc_3"))) == 2 })
	cancelRun(e, "inv_rc_3")
	if r1, r2 := e.Mail.RequestsFor(key3), e.Mail.RequestsFor(recoup.ResendKey(key3)); r1 != 1 || r2 != 1 {
		t.Fatalf("requests: %d under the key, %d under the resend key; want 1 and 1, never a third", r1, r2)
	}
}

func cancelRun(e *workertest.Harness, invoice string) {
	e.T.Helper()
	e.Event(map[string]any{"type": "dunning.cancel", "event_id": "evt_cancel_" + invoice, "invoice_id": invoice,
		"reason": "test over", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano)})
	if res := e.Result(invoice); res.Status != recoup.StatusCanceled {
		e.T.Fatalf("%s: result %+v, want canceled", invoice, res)
	}
}

// A spam report for the run's email reaches the open run as an opt-out of email (through
// the event log and the relay, like billing's opt-outs), and the customer's consent ledger
// holds it with SendGrid as the source.
func TestSpamReportReachesTheOpenRunAsAnOptOut(t *testing.T) {
	e := reconcileHarness(t)
	e.Event(workertest.Failed("evt_rc_4", "inv_rc_4", "cus_rc_4", time.Now().UTC()))
	key := recoup.WorkflowID("inv_rc_4") + "/step-1/email"
	e.Eventually("the first message", func() bool { return len(e.State("inv_rc_4").Messages) == 1 })
	ctx := context.Background()
	res, err := e.Store.RecordProviderEvent(ctx, postgres.ProviderEvent{Provider: "sendgrid", ProviderEventID: "sg_rc_4_spam",
		IdempotencyKey: key, Kind: recoup.DeliverySpamReport, OptOut: true, OccurredAt: time.Now().UTC(), Body: []byte(`{"event":"spamreport"}`)})
	if err != nil || res.OptOutEventID == "" {
		t.Fatalf("record the spam report: %+v, %v", res, err)
	}
	if _, err := e.Ingest.DeliverPending(ctx, 10, nil); err != nil { // the relay's round
		t.Fatal(err)
	}
	e.Eventually("the run hears the opt-out", func() bool {
		for _, ch := range e.State("inv_rc_4").OptedOut {
			if ch == recoup.ChannelEmail {
				return true
			}
		}
		return false
	})
	ledger, err := e.Store.ConsentLedger(ctx, "cus_rc_4")
	if err != nil {
		t.Fatal(err)
	}
	if last := ledger[len(ledger)-1]; last.Consent || last.Channel != "email" || last.Source != postgres.ConsentSendGrid || last.EvidenceEventID != res.OptOutEventID {
		t.Errorf("last ledger row = %+v, want the email opt-out from sendgrid", last)
	}
	cancelRun(e, "inv_rc_4")
}
