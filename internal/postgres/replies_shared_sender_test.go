package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// two customers share one handset (a family, a small business). A STOP texted from
// it must stop every SMS to that number; RecordReply withdraws consent for only the profile
// updated last, so the other customer's runs keep texting the phone that said STOP.
func TestStopFromASharedPhoneStopsEveryCustomerOnThatNumber(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	a := fullCustomer(t0)
	b := fullCustomer(t0.Add(time.Minute))
	b.CustomerID, b.Email = "cus_2", "bob@example.com" // same phone, updated later
	for _, c := range []postgres.Customer{a, b} {
		if _, err := st.UpsertCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:twilio:SMr2a", Provider: "twilio", Channel: "sms",
		Sender: "+14155552671", Keyword: "stop", Text: "STOP", ReceivedAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cus_1", "cus_2"} {
		if _, sms := consent(t, st, id); sms {
			t.Errorf("%s: SMS consent still granted for +14155552671 after that number texted STOP", id)
		}
	}
}

// a free-text reply from a shared address goes to the profile updated last, so cus_1's
// "I already paid" pauses cus_2's dunning (and verify_payment is asked for cus_2's invoice)
// while cus_1's own run never hears it.
func TestReplyFromASharedEmailIsNotAttributedToAnotherCustomer(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	a := fullCustomer(t0)
	b := fullCustomer(t0.Add(time.Minute))
	b.CustomerID, b.Phone = "cus_2", "+14155550199"
	for _, c := range []postgres.Customer{a, b} {
		if _, err := st.UpsertCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	openRun(t, st, "inv_1") // cus_1's run: the one the reply is about
	rec, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:sendgrid:r2b", Provider: "sendgrid", Channel: "email",
		Sender: "ADA@example.com", Text: "I already paid", ReceivedAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.CustomerID == "cus_2" {
		t.Fatalf("reply attributed to cus_2 (updated last) although cus_1 has the open run it answers; ambiguous senders should go to support")
	}
}

// an email "Yes" (carrier START, meaningless for email) grants email consent the
// customer had withdrawn through billing.
func TestAnEmailYesDoesNotGrantEmailConsent(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	c := fullCustomer(t0)
	no := false
	c.EmailConsentSet = &no
	if _, err := st.UpsertCustomer(ctx, c); err != nil {
		t.Fatal(err)
	}
	rec, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:sendgrid:r2yes", Provider: "sendgrid", Channel: "email",
		Sender: "ada@example.com", Keyword: "start", Text: "Yes", ReceivedAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if email, _ := consent(t, st, "cus_1"); email {
		t.Fatalf("email consent granted by an email reading %q (%+v)", "Yes", rec)
	}
}

// An email the provider could not verify (SPF and DKIM not passing for its domain) is
// recorded, attributed to nobody, changes no consent and is delivered to no run.
func TestAnUnverifiedEmailIsRecordedButIsNobodysReply(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	openRun(t, st, "inv_1")
	rec, err := st.RecordReply(ctx, postgres.InboundReply{EventID: "reply:sendgrid:unverified", Provider: "sendgrid", Channel: "email",
		Text: "I'll pay on the 30th", ReceivedAt: t0.Add(time.Hour), Unverified: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.CustomerID != "" || !rec.Delivered || rec.Note == "" {
		t.Fatalf("unverified email recorded as %+v", rec)
	}
	pending, err := st.UndeliveredReplies(ctx, 10)
	if err != nil || len(pending) != 0 {
		t.Fatalf("left for delivery to runs: %+v %v", pending, err)
	}
}
