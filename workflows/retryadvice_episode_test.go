package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// the Stripe executor's Idempotency-Key is recoup-<invoice>-attempt-<n>, n the run's
// advice count, which starts again at 1 in every run. The invoice's second dunning run
// (episode 2, same invoice, a failure after the first run ended) pays with the key the first
// run used: within Stripe's 24 h key lifetime Stripe replays the first attempt's stored
// answer (the old decline) and charges nothing, and the run records that stale decline.
func TestASecondRunOfTheInvoiceUsesFreshIdempotencyKeys(t *testing.T) {
	keys := map[string]int{}
	for _, episode := range []int{1, 2} {
		w := newWorld(t)
		w.input.Episode = episode
		w.input.Failure.FailureCode = "try_again_later"
		payer := &fakePayer{now: w.env.Now}
		acts := &activities.DunningActivities{Payer: payer, ClassifyDecline: func(string) recoup.DeclineClass { return recoup.DeclineIssuerUnavailable }}
		w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
		w.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts.PayInvoice)
		w.run()
		for _, k := range payer.calls {
			keys[k]++
		}
	}
	for k, n := range keys {
		if n > 1 {
			t.Errorf("Idempotency-Key %s used by %d runs of the same invoice", k, n)
		}
	}
}
