package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// openRun records inv's failure for cus_1 and routes it, which opens the invoice's run.
func openRun(t *testing.T, st *postgres.Store, inv string) {
	t.Helper()
	ctx := context.Background()
	record(t, st, failedEvent("evt_"+inv, inv, t0, 4900))
	claim, _, err := st.ClaimInvoice(ctx, inv, true)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	pending, err := claim.Pending(ctx)
	if err != nil || len(pending) == 0 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	if _, err := claim.Route(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
}

// A STOP reply is recorded once, found the customer by the sender's phone, and withdrew SMS
// consent for every later send (consent ledger, source reply, the reply as evidence); a
// START grants it back; the sender's address is stored nowhere.
func TestStopReplyWithdrawsSMSConsentWithTheReplyAsEvidence(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	openRun(t, st, "inv_1")
	stop := postgres.InboundReply{EventID: "reply:twilio:SM1", Provider: "twilio", Channel: "sms", Sender: "+14155552671",
		Keyword: "stop", Text: "STOP", ReceivedAt: t0.Add(time.Hour)}
	rec, err := st.RecordReply(ctx, stop)
	if err != nil || rec.CustomerID != "cus_1" || rec.Duplicate || !rec.ConsentChanged {
		t.Fatalf("RecordReply = %+v, %v", rec, err)
	}
	if _, sms := consent(t, st, "cus_1"); sms {
		t.Fatal("SMS consent still granted after STOP")
	}
	again, err := st.RecordReply(ctx, stop)
	if err != nil || !again.Duplicate || again.CustomerID != "cus_1" {
		t.Fatalf("the provider's retry: %+v, %v", again, err)
	}
	// Billing's next snapshot, newer but only repeating the old consent, does not lift the
	// customer's own STOP (nor does an import): only their START does.
	later := fullCustomer(t0.Add(90 * time.Minute))
	if _, err := st.UpsertCustomer(ctx, later); err != nil {
		t.Fatal(err)
	}
	if _, sms := consent(t, st, "cus_1"); sms {
		t.Fatal("a newer snapshot lifted the customer's STOP")
	}
	if _, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:twilio:SM2", Provider: "twilio", Channel: "sms",
		Sender: "+14155552671", Keyword: "start", Text: "START", ReceivedAt: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, sms := consent(t, st, "cus_1"); !sms {
		t.Fatal("START did not grant SMS consent back")
	}
	ledger, err := st.ConsentLedger(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	var fromReplies []string
	for _, c := range ledger {
		if c.Source == postgres.ConsentReply {
			fromReplies = append(fromReplies, c.EvidenceEventID)
		}
	}
	if !slices.Equal(fromReplies, []string{"reply:twilio:SM1", "reply:twilio:SM2"}) {
		t.Fatalf("ledger %+v", ledger)
	}
	var stored int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM inbound_replies WHERE text LIKE '%4155552671%' OR delivery_note LIKE '%4155552671%'`).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the sender's number is stored (%d, %v)", stored, err)
	}
	invoices, err := st.OpenRunInvoices(ctx, "cus_1")
	if err != nil || !slices.Equal(invoices, []string{"inv_1"}) {
		t.Fatalf("open runs %v, %v", invoices, err)
	}
}

func TestAnEmailReplyFindsItsCustomerCaseInsensitivelyAndAnUnknownSenderNone(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	rec, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:sendgrid:a", Provider: "sendgrid", Channel: "email",
		Sender: "ADA@Example.com", Text: "I paid yesterday", ReceivedAt: t0})
	if err != nil || rec.CustomerID != "cus_1" {
		t.Fatalf("%+v, %v", rec, err)
	}
	rec, err = st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:twilio:SM9", Provider: "twilio", Channel: "sms",
		Sender: "+15550000000", Keyword: "stop", Text: "STOP", ReceivedAt: t0})
	if err != nil || rec.CustomerID != "" {
		t.Fatalf("%+v, %v", rec, err)
	}
	// cus_1 has no open run: its reply waits, parked, out of the delivery list.
	pending, err := st.UndeliveredReplies(ctx, 10)
	if err != nil || len(pending) != 1 || pending[0].EventID != "reply:twilio:SM9" {
		t.Fatalf("undelivered %+v, %v", pending, err)
	}
	if n, err := st.ParkedReplies(ctx); err != nil || n != 1 {
		t.Fatalf("parked %d, %v", n, err)
	}
	if err := st.MarkReplyDelivered(ctx, "reply:twilio:SM9", "no customer"); err != nil {
		t.Fatal(err)
	}
	if pending, _ := st.UndeliveredReplies(ctx, 10); len(pending) != 0 {
		t.Fatalf("undelivered after marking: %+v", pending)
	}
}
