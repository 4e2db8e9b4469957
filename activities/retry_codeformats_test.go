package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// Visa category-1 codes ("issuer will never approve") must never be retried,
// whatever format billing sends them in. The never-retry list is matched byte for byte
// against the raw failure code, so a namespaced or lower-case code slips through and the
// class from declines.yaml (generic_soft / unknown) advises a retry on a Visa card.
func TestVisaCategory1CodesInOtherFormatsAreNeverRetried(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }}}
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	for _, code := range []string{"iso8583:12", "iso8583:46", "r0", "ISO8583:12"} {
		in := activities.AdviseRetryInput{WorkflowID: "dunning-inv_1", InvoiceID: "inv_1", CustomerID: "cus_1",
			Failure:  recoup.RetryAttempt{EventID: "evt_1", At: at, Code: code},
			Attempts: []recoup.RetryAttempt{{EventID: "evt_1", At: at, Code: code}},
			CardBIN:  "424242", Country: "US", TimeZone: "America/New_York", Now: at}
		res, err := acts.AdviseRetry(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Advice.DoNotRetry || res.Execute {
			t.Errorf("Visa card, code %q (Visa category 1): advised %s retry at %s (%s); Visa forbids any reattempt",
				code, res.Advice.Class, res.Advice.RetryAt, res.Advice.Reason)
		}
	}
}

// A Mastercard Merchant Advice Code 03 ("do not try again") that came with the failure
// (payment.failed advice_code) makes the advice do_not_retry whatever the failure code.
func TestMastercardAdviceCode03IsNeverRetried(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }}}
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	f := recoup.RetryAttempt{EventID: "evt_1", At: at, Code: "card_declined", AdviceCode: "03"}
	res, err := acts.AdviseRetry(context.Background(), activities.AdviseRetryInput{WorkflowID: "dunning-inv_1",
		InvoiceID: "inv_1", CustomerID: "cus_1", Failure: f, Attempts: []recoup.RetryAttempt{f},
		CardBIN: "555555", Country: "US", TimeZone: "America/New_York", Now: at})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Advice.DoNotRetry || res.Execute {
		t.Errorf("Mastercard MAC 03: advised %s retry at %s (%s); want do_not_retry", res.Advice.Class, res.Advice.RetryAt, res.Advice.Reason)
	}
}
