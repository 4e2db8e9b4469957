package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// laterSend reserves and completes a send of another invoice on r's channel, claimed after
// r, and returns its key.
func laterSend(t *testing.T, st *postgres.Store, r postgres.Reservation, invoice string) string {
	t.Helper()
	later := reservation("dunning-"+invoice, 1, r.Channel)
	mustReserve(t, st, later)
	if err := st.CompleteSend(context.Background(), later.Key, postgres.SendSent, "msg_"+invoice); err != nil {
		t.Fatal(err)
	}
	return later.Key
}

// eventsFlowedPast records an event of r's provider, received now, about a message claimed
// after r: the watermark that shows the provider's events reach us past r's window.
func eventsFlowedPast(t *testing.T, st *postgres.Store, r postgres.Reservation) {
	t.Helper()
	key := laterSend(t, st, r, "inv_watermark")
	e := sgEvent("sg_watermark", key, recoup.DeliveryAccepted, t0)
	if r.Channel == "sms" {
		e.Provider, e.ProviderEventID = "twilio", "SMwatermark/sent"
	}
	recordProvider(t, st, e)
}

func reconcileSend(t *testing.T, st *postgres.Store, channel string) postgres.Reservation {
	t.Helper()
	if _, err := st.UpsertCustomer(context.Background(), fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	r := reservation("dunning-inv_1", 1, channel)
	mustReserve(t, st, r)
	if err := st.ReconcileSend(context.Background(), r.Key, "provider: HTTP 502"); err != nil {
		t.Fatal(err)
	}
	return r
}

// SendGrid retries a failed event delivery for up to 72 hours: past the window, the absence
// of an event names nothing while the provider's events may be held up (starter serve was
// down). No resend until an event of that provider received after the window describes a
// message claimed after ours; the original's late event then settles it, and no resend goes.
func TestResendWaitsForTheProvidersEventsToFlowPastTheWindow(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reconcileSend(t, st, "email")
	var pending *postgres.ReconcilePendingError
	if _, resend, err := st.ClaimResend(ctx, r.Key, 0); !errors.As(err, &pending) || !pending.Watermark || resend {
		t.Fatalf("ClaimResend past the window without any later event: resend %v, %v; want a watermark ReconcilePendingError", resend, err)
	}
	// An SMS's Twilio event says nothing of SendGrid's stream.
	sms := reservation("dunning-inv_sms", 1, "sms")
	mustReserve(t, st, sms)
	tw := sgEvent("SMx/sent", sms.Key, recoup.DeliveryAccepted, t0)
	tw.Provider = "twilio"
	recordProvider(t, st, tw)
	if _, resend, err := st.ClaimResend(ctx, r.Key, 0); !postgres.IsReconcilePending(err) || resend {
		t.Fatalf("after another provider's event: resend %v, %v; want still pending", resend, err)
	}
	recordProvider(t, st, sgEvent("sg_late", r.Key, recoup.DeliveryAccepted, t0)) // redelivered at last
	row, resend, err := st.ClaimResend(ctx, r.Key, 0)
	if err != nil || resend || row.Status != postgres.SendSent {
		t.Errorf("after the original's late event: %+v, resend %v, %v; want sent, no resend", row, resend, err)
	}
}

// The other side: an event of the provider received after the window about a message
// claimed after ours shows the stream flowed past it with nothing about ours: never
// accepted, resent once. An event about a message claimed before ours does not count.
func TestResendGoesOnceTheProvidersEventsFlowedPastTheWindow(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	earlier := reservation("dunning-inv_0", 1, "email")
	mustReserve(t, st, earlier)
	r := reconcileSend(t, st, "email")
	recordProvider(t, st, sgEvent("sg_earlier", earlier.Key, recoup.DeliveryAccepted, t0))
	if _, _, err := st.ClaimResend(ctx, r.Key, 0); !postgres.IsReconcilePending(err) {
		t.Fatalf("after an event about a message claimed before ours: %v; want pending", err)
	}
	eventsFlowedPast(t, st, r)
	row, resend, err := st.ClaimResend(ctx, r.Key, 0)
	if err != nil || !resend || row.Status != postgres.SendSuperseded {
		t.Fatalf("after the watermark: %+v, resend %v, %v; want superseded, resend", row, resend, err)
	}
}

// A deployment that cannot receive the channel's provider's events never resends: the send
// stays reconcile, its evidence says why, whatever the clock or the other events say.
func TestClaimResendWithoutAnEvidencePathNeverResends(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reconcileSend(t, st, "sms")
	eventsFlowedPast(t, st, r)
	row, resend, err := st.ClaimResendIf(ctx, r.Key, 0, false)
	if err != nil || resend || row.Status != postgres.SendReconcile {
		t.Fatalf("ClaimResendIf(canHear false) = %+v, resend %v, %v; want reconcile, no resend", row, resend, err)
	}
	if p := providerStatus(t, st, r.Key); p.Evidence != postgres.NoEvidencePath {
		t.Errorf("evidence %q, want %q", p.Evidence, postgres.NoEvidencePath)
	}
}

// Between ClaimResend (which supersedes the original) and the resend's ReserveSend, an event
// proving the original was accepted arrives: the resend is not claimed, and the original's
// outcome (sent) is returned.
func TestResendIsNotReservedOnceEvidenceSettledTheOriginal(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reconcileSend(t, st, "email")
	eventsFlowedPast(t, st, r)
	if _, resend, err := st.ClaimResend(ctx, r.Key, 0); err != nil || !resend {
		t.Fatalf("ClaimResend: resend %v, %v", resend, err)
	}
	recordProvider(t, st, sgEvent("sg_p", r.Key, recoup.DeliveryAccepted, t0))
	again := r
	again.Key, again.ResendOf = recoup.ResendKey(r.Key), r.Key
	if row, claimed := mustReserve(t, st, again); claimed || row.Status != postgres.SendSent {
		t.Errorf("resend reservation = %+v, claimed %v; want not claimed, the original's sent", row, claimed)
	}
	if _, found, err := st.FindSend(ctx, again.Key); err != nil || found {
		t.Errorf("a resend row was written (%v, %v)", found, err)
	}
}

// A late bounce of the address a message went to marks nothing when the customer has a new
// address since: the event is recorded only.
func TestLateBounceOfAnOldAddressLeavesTheNewOneUsable(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := sentSend(t, st) // sent to ada@example.com
	moved := fullCustomer(t0.Add(time.Minute))
	moved.Email = "ada@new.example"
	if _, err := st.UpsertCustomer(ctx, moved); err != nil {
		t.Fatal(err)
	}
	hard := sgEvent("sg_hard_old", r.Key, recoup.DeliveryBounced, t0.Add(10*time.Minute))
	hard.Unreachable, hard.ErrorCode, hard.Reason, hard.Recipient = true, "5.1.1", "mailbox does not exist", "ada@example.com"
	res := recordProvider(t, st, hard)
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.EmailUndeliverable != "" {
		t.Errorf("the bounce of the old address marked the customer's new one undeliverable: %q", c.EmailUndeliverable)
	}
	if ev, err := st.ProviderEvidence(ctx, r.Key); err != nil || len(ev) != 1 {
		t.Errorf("the bounce is not kept as evidence: %v, %v (%s)", ev, err, res.Note)
	}
}

// A dead number reported by Twilio marks the customer's number when it is the one the event
// names (E.164), and only the SMS channel.
func TestUnreachableNumberMarksTheCustomersCurrentNumber(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	r := reservation("dunning-inv_1", 1, "sms")
	mustReserve(t, st, r)
	e := sgEvent("SM1/undelivered", r.Key, recoup.DeliveryUndelivered, t0)
	e.Provider, e.ErrorCode, e.Unreachable, e.Recipient = "twilio", "30006", true, "+14155552671"
	recordProvider(t, st, e)
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMSUndeliverable == "" || c.EmailUndeliverable != "" {
		t.Errorf("after Twilio 30006 for the customer's number: sms %q, email %q; want sms only", c.SMSUndeliverable, c.EmailUndeliverable)
	}
}
