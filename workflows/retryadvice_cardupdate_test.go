package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// the customer replaced the expired card (payment_method.updated, no
// retry_requested); billing charged the new card a day later and it failed with
// insufficient_funds. The advice on that failure — a failure of the NEW card — still counts
// the earlier update and says "do not retry: billing charges the new card", so the new card
// is never retried on payday and the messages may not mention a retry. The update predates
// the failure; it should not govern it.
func TestAFailureOfTheNewCardAfterAnUpdateIsAdvisedOnItsOwnMerits(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "expired_card"
	w.input.Failure.CardBIN = "424242"
	w.input.Failure.IssuerCountry = "US"
	acts := &activities.DunningActivities{ClassifyDecline: func(code string) recoup.DeclineClass {
		return map[string]recoup.DeclineClass{"expired_card": recoup.DeclineUpdatePaymentMethod, "insufficient_funds": recoup.DeclineInsufficientFunds}[code]
	}}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	w.at(day, recoup.SignalPaymentMethodUpdated, recoup.PaymentMethodUpdated{EventID: "evt_card", OccurredAt: t0.Add(day)})
	w.at(2*day, recoup.SignalPaymentFailed, recoup.PaymentFailed{EventID: "evt_new_card_failed", InvoiceID: "inv_1", CustomerID: "cus_1",
		AmountMinor: 4900, Currency: "USD", FailureCode: "insufficient_funds", OccurredAt: t0.Add(2 * day)})
	after := w.stateAt(2*day + time.Hour)
	w.env.RegisterDelayedCallback(func() { w.env.CancelWorkflow() }, 2*day+2*time.Hour)
	w.run()
	adv := after.Retry.Advice
	if adv == nil || adv.FailureEventID != "evt_new_card_failed" || adv.DoNotRetry {
		t.Fatalf("advice on the new card's insufficient_funds failure: %+v; want a payday retry", adv)
	}
}
