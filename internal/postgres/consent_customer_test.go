package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// Regression (review): a spam report is the customer's own word. A profile billing sent
// after the report happened but before SendGrid's webhook reached us, repeating
// "email_consent": true, does not outrank it; and no later profile re-grants email.
func TestSpamReportOutranksAProfileRepeatingAnOlderConsent(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := sentSend(t, st)
	// billing: the card was updated at t0+10m; the profile repeats consent true.
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0.Add(10*time.Minute))); err != nil {
		t.Fatal(err)
	}
	// the customer pressed "report spam" at t0+5m; SendGrid's webhook arrives afterwards.
	e := sgEvent("sg_spam_late", r.Key, recoup.DeliverySpamReport, t0.Add(5*time.Minute))
	e.OptOut = true
	recordProvider(t, st, e)
	if email, _ := consent(t, st, "cus_1"); email {
		t.Errorf("after the customer's spam report, email consent is still true")
	}
	if _, claimed, err := st.ReserveSend(ctx, reservation("dunning-inv_2", 1, "email")); err == nil && claimed {
		t.Errorf("an email to the customer who reported spam was reserved (next invoice's run)")
	}
	// a day later billing sends the profile again, still saying true: it changes nothing.
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0.Add(24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if email, _ := consent(t, st, "cus_1"); email {
		t.Errorf("a later profile repeating email_consent true re-granted email after a spam report")
	}
}
