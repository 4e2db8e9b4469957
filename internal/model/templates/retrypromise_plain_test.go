package templates_test

import (
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// for a lost/stolen card (do_not_retry: never retried) the shipped guardrails let
// plain English promises of another charge through: the retry_promises list has "charge
// again" / "charge your card again" but not the passive or "again" with other verbs.
func TestNoRetryPromiseForADoNotRetryCardInPlainEnglish(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	d := policy.DeclineFacts{Class: recoup.DeclineDoNotRetry, NoRetryPromise: true}
	for _, s := range []string{
		"Your card will be charged again on the 15th.",
		"We'll take the payment again on payday.",
		"We will process the payment once more on Friday.",
		"No action needed: the payment will go through again on Friday.",
	} {
		if v := set.Policy.CheckDeclineText("body", s, d); len(v) == 0 {
			t.Errorf("do_not_retry message passed the guardrails: %q", s)
		}
	}
}
