package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func sgEvent(id, key, kind string, at time.Time) postgres.ProviderEvent {
	return postgres.ProviderEvent{Provider: "sendgrid", ProviderEventID: id, IdempotencyKey: key, Kind: kind,
		ProviderMessageID: "msg_1", OccurredAt: at, Body: []byte(`{"sg_event_id":"` + id + `"}`)}
}

func recordProvider(t *testing.T, st *postgres.Store, e postgres.ProviderEvent) postgres.ProviderEventResult {
	t.Helper()
	res, err := st.RecordProviderEvent(context.Background(), e)
	if err != nil {
		t.Fatalf("RecordProviderEvent(%s): %v", e.ProviderEventID, err)
	}
	return res
}

func providerStatus(t *testing.T, st *postgres.Store, key string) postgres.ProviderStatus {
	t.Helper()
	p, err := st.GetProviderStatus(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sentSend stores the customer and a send the provider accepted.
func sentSend(t *testing.T, st *postgres.Store) postgres.Reservation {
	t.Helper()
	if _, err := st.UpsertCustomer(context.Background(), fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	if err := st.CompleteSend(context.Background(), r.Key, postgres.SendSent, "msg_1"); err != nil {
		t.Fatal(err)
	}
	return r
}

// A provider redelivers events (SendGrid retries a batch for up to 72 hours): the same event
// is recorded once, and its second delivery changes nothing.
func TestRedeliveredProviderEventIsRecordedOnce(t *testing.T) {
	st := fakes.MustStore(t)
	r := sentSend(t, st)
	e := sgEvent("sg_1", r.Key, recoup.DeliveryDelivered, t0.Add(time.Minute))
	if res := recordProvider(t, st, e); res.Duplicate {
		t.Fatal("the first delivery was reported as a duplicate")
	}
	if res := recordProvider(t, st, e); !res.Duplicate {
		t.Fatal("the redelivered event was not reported as a duplicate")
	}
	if n := count(t, st, "provider_events"); n != 1 {
		t.Errorf("provider_events holds %d rows, want 1", n)
	}
}

// Events of one message arrive in any order: a late "processed" does not move a delivered
// message back, and a bounce after delivery (an asynchronous bounce) is kept.
func TestOutOfOrderEventsNeverMoveTheStatusBack(t *testing.T) {
	st := fakes.MustStore(t)
	r := sentSend(t, st)
	recordProvider(t, st, sgEvent("sg_d", r.Key, recoup.DeliveryDelivered, t0.Add(2*time.Minute)))
	recordProvider(t, st, sgEvent("sg_p", r.Key, recoup.DeliveryAccepted, t0.Add(time.Minute)))
	recordProvider(t, st, sgEvent("sg_def", r.Key, recoup.DeliveryDeferred, t0.Add(90*time.Second)))
	if got := providerStatus(t, st, r.Key).Provider; got != recoup.DeliveryDelivered {
		t.Fatalf("after delivered, then an older processed and deferred: provider status %q, want delivered", got)
	}
	recordProvider(t, st, sgEvent("sg_o", r.Key, recoup.DeliveryOpened, t0.Add(3*time.Minute)))
	recordProvider(t, st, sgEvent("sg_b", r.Key, recoup.DeliveryBounced, t0.Add(time.Hour)))
	if got := providerStatus(t, st, r.Key).Provider; got != recoup.DeliveryBounced {
		t.Errorf("after a bounce that followed the delivery: provider status %q, want bounced", got)
	}
	ev, err := st.ProviderEvidence(context.Background(), r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 5 || ev[0].ProviderEventID != "sg_p" || ev[4].ProviderEventID != "sg_b" {
		t.Errorf("evidence = %+v, want the 5 events in the order they occurred", ev)
	}
}

// A hard bounce marks the customer's email address undeliverable for every later decision,
// not only this run's; a new address makes email usable again.
func TestHardBounceMarksTheAddressUndeliverableOnTheCustomer(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := sentSend(t, st)
	soft := sgEvent("sg_soft", r.Key, recoup.DeliverySoftBounced, t0.Add(time.Minute))
	recordProvider(t, st, soft)
	if c, _ := st.GetCustomer(ctx, "cus_1"); c.EmailUndeliverable != "" {
		t.Fatalf("a soft bounce marked the address undeliverable: %q", c.EmailUndeliverable)
	}
	hard := sgEvent("sg_hard", r.Key, recoup.DeliveryBounced, t0.Add(2*time.Minute))
	hard.Unreachable, hard.ErrorCode, hard.Reason = true, "5.1.1", "mailbox does not exist"
	recordProvider(t, st, hard)
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.EmailUndeliverable == "" || c.SMSUndeliverable != "" {
		t.Fatalf("after a hard bounce: email %q, sms %q; want email undeliverable only", c.EmailUndeliverable, c.SMSUndeliverable)
	}
	later := fullCustomer(t0.Add(time.Hour))
	later.Email = "ada@new.example"
	if _, err := st.UpsertCustomer(ctx, later); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.GetCustomer(ctx, "cus_1"); c.EmailUndeliverable != "" {
		t.Errorf("a new address is still undeliverable: %q", c.EmailUndeliverable)
	}
}

// A spam report is an opt-out: stored in the consent ledger with its source, time and
// evidence, recorded in the event log as a dunning.opt_out for the run, and a later send on
// the channel is refused.
func TestSpamReportIsAnOptOutInTheConsentLedger(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := sentSend(t, st)
	e := sgEvent("sg_spam", r.Key, recoup.DeliverySpamReport, t0.Add(time.Hour))
	e.OptOut = true
	res := recordProvider(t, st, e)
	if res.OptOutEventID == "" {
		t.Fatal("the spam report recorded no opt-out event")
	}
	recordProvider(t, st, e) // redelivered: one ledger row, one event
	if email, sms := consent(t, st, "cus_1"); email || !sms {
		t.Fatalf("after the spam report: email %v, sms %v; want sms only", email, sms)
	}
	ledger, err := st.ConsentLedger(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	var optOuts []postgres.ConsentChange
	for _, l := range ledger {
		if !l.Consent {
			optOuts = append(optOuts, l)
		}
	}
	if len(optOuts) != 1 || optOuts[0].Source != postgres.ConsentSendGrid || optOuts[0].Channel != "email" ||
		optOuts[0].EvidenceEventID != res.OptOutEventID || !optOuts[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("consent ledger opt-outs = %+v, want one email opt-out from sendgrid with its evidence and time", optOuts)
	}
	var typ, source string
	if err := st.Pool().QueryRow(ctx, `SELECT type, source FROM events WHERE event_id = $1`, res.OptOutEventID).Scan(&typ, &source); err != nil {
		t.Fatalf("the opt-out is not in the event log: %v", err)
	}
	if typ != recoup.EventOptOut || source != "sendgrid" {
		t.Errorf("event log row: type %q source %q, want dunning.opt_out from sendgrid", typ, source)
	}
	var barred *postgres.SendBarredError
	if _, _, err := st.ReserveSend(ctx, reservation("dunning-inv_1", 2, "email")); !errors.As(err, &barred) {
		t.Errorf("ReserveSend after the spam report: %v, want refused for withdrawn consent", err)
	}
}

// A send whose outcome was unknown is settled by the provider's event naming its key, and
// is then never resent.
func TestEventSettlesAReconcileSend(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	if err := st.ReconcileSend(ctx, r.Key, "sendgrid: HTTP 502"); err != nil {
		t.Fatal(err)
	}
	recordProvider(t, st, sgEvent("sg_p", r.Key, recoup.DeliveryAccepted, t0))
	p := providerStatus(t, st, r.Key)
	if p.Status != postgres.SendSent || p.Provider != recoup.DeliveryAccepted || p.Evidence == "" {
		t.Fatalf("after the processed event: %+v, want sent by evidence", p)
	}
	row, resend, err := st.ClaimResend(ctx, r.Key, 0)
	if err != nil || resend || row.Status != postgres.SendSent {
		t.Errorf("ClaimResend of a settled send = %+v, resend %v, %v; want sent, no resend", row, resend, err)
	}
}

// A reconcile send no provider event named within the window was never accepted: it is
// superseded and resent once under the resend key, whose own unknown outcome is never
// resent again; asking twice gives the same answer, and asking early is refused.
func TestReconcileSendWithoutEvidenceIsResentOnce(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	if err := st.ReconcileSend(ctx, r.Key, "sendgrid: timeout"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ClaimResend(ctx, r.Key, time.Hour); !postgres.IsReconcilePending(err) {
		t.Fatalf("ClaimResend within the window: %v, want ReconcilePendingError", err)
	}
	for range 2 {
		row, resend, err := st.ClaimResend(ctx, r.Key, 0)
		if err != nil || !resend || row.Status != postgres.SendSuperseded {
			t.Fatalf("ClaimResend after the window = %+v, resend %v, %v; want superseded, resend", row, resend, err)
		}
	}
	again := r
	again.Key, again.ResendOf = recoup.ResendKey(r.Key), r.Key
	if _, claimed := mustReserve(t, st, again); !claimed {
		t.Fatal("the resend key could not be reserved")
	}
	if err := st.ReconcileSend(ctx, again.Key, "sendgrid: timeout"); err != nil {
		t.Fatal(err)
	}
	row, resend, err := st.ClaimResend(ctx, again.Key, 0)
	if err != nil || resend || row.Status != postgres.SendReconcile {
		t.Errorf("ClaimResend of the resend = %+v, resend %v, %v; want reconcile kept, never a third", row, resend, err)
	}
	if p := providerStatus(t, st, again.Key); p.ResendOf != r.Key {
		t.Errorf("resend row resend_of = %q, want %q", p.ResendOf, r.Key)
	}
}

// A 503 after the provider took the message: its event arrives before the retry, which then
// finds the send settled and calls nobody.
func TestRetryAfterTheProvidersEventDoesNotSendAgain(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	if err := st.ReleaseSend(ctx, r.Key, "sendgrid: HTTP 503"); err != nil {
		t.Fatal(err)
	}
	recordProvider(t, st, sgEvent("sg_p", r.Key, recoup.DeliveryAccepted, t0))
	row, claimed := mustReserve(t, st, r)
	if claimed || row.Status != postgres.SendSent {
		t.Errorf("retry after the event = %+v, claimed %v; want sent, not claimed", row, claimed)
	}
}

// An opt-out a provider reports outside a send's events (an inbound STOP) goes the same
// way: the event log, the consent ledger with the provider as source; again, a duplicate.
func TestProviderOptOutOutsideASendIsRecordedOnce(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	o := postgres.ProviderOptOut{Provider: "twilio", ProviderEventID: "SM_inbound_1", InvoiceID: "inv_1",
		CustomerID: "cus_1", Channel: "sms", At: t0.Add(time.Hour), Reason: "inbound STOP"}
	id, err := st.RecordProviderOptOut(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := st.RecordProviderOptOut(ctx, o); err != nil || again != id {
		t.Fatalf("again: %q, %v; want the same event id %q", again, err, id)
	}
	if email, sms := consent(t, st, "cus_1"); !email || sms {
		t.Fatalf("after the STOP: email %v, sms %v; want email only", email, sms)
	}
	if n := count(t, st, "events"); n != 1 {
		t.Errorf("event log holds %d events, want 1", n)
	}
	o.Channel = "fax"
	if _, err := st.RecordProviderOptOut(ctx, o); err == nil || !strings.Contains(err.Error(), "channel") {
		t.Errorf("channel fax: %v, want refused", err)
	}
}
