package policy_test

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

func TestTheRetryAdviceNarrowsTheRetryPromise(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	mayPromise := policy.DeclineFacts{Class: recoup.DeclineInsufficientFunds}
	for _, c := range []struct {
		name    string
		facts   policy.DeclineFacts
		adv     *recoup.RetryAdvice
		promise bool
		why     string
	}{
		{"retry ahead", mayPromise, &recoup.RetryAdvice{RetryAt: now.Add(time.Hour), Remaining: 2}, true, ""},
		{"no advice", mayPromise, nil, false, "advice: no retry advised yet"},
		{"advice failed", mayPromise, &recoup.RetryAdvice{Reason: "not advised: boom", Delivery: "failed"}, false, "advice: no retry advised yet"},
		{"do not retry", mayPromise, &recoup.RetryAdvice{DoNotRetry: true, Reason: "Visa budget spent"}, false, "advice: no retry (Visa budget spent)"},
		{"retry past", mayPromise, &recoup.RetryAdvice{RetryAt: now.Add(-time.Minute)}, false, "advice: the advised retry is past"},
		// The plan's own no-retry stays, and needs no advice to explain it.
		{"plan forbids", policy.DeclineFacts{Class: recoup.DeclineDoNotRetry, NoRetryPromise: true}, &recoup.RetryAdvice{RetryAt: now.Add(time.Hour)}, false, ""},
	} {
		got := c.facts.WithAdvice(c.adv, now)
		if got.NoRetryPromise == c.promise || got.NoRetryWhy != c.why {
			t.Errorf("%s: NoRetryPromise %v, why %q; want promise %v, why %q", c.name, got.NoRetryPromise, got.NoRetryWhy, c.promise, c.why)
		}
	}
}
