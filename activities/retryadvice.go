package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/retry"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/stripe"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// AdviseRetryInput is one failure to advise billing on, with the run's attempts so far.
type AdviseRetryInput struct {
	WorkflowID string // the run key
	InvoiceID  string
	CustomerID string
	Failure    recoup.RetryAttempt   // the failure advised on (its event id keys the webhook)
	Attempts   []recoup.RetryAttempt // every attempt so far, the failure included, oldest first
	CardBIN    string                // the network is read from it
	Country    string                // the issuer's country: the payday calendar
	TimeZone   string                // the customer's IANA zone; "": read from the customer's profile (else UTC)
	// CardUpdated: the customer updated the card since the failure; RetryAfterCardUpdate:
	// billing asked to be advised even then.
	CardUpdated, RetryAfterCardUpdate bool
	Now                               time.Time // the run's clock when the failure was applied
}

// AdviseRetryResult is the advice and how billing was told. Execute: the Stripe executor is
// enabled and the advice is a retry, so the run pays the invoice at RetryAt (PayInvoice).
type AdviseRetryResult struct {
	Advice  recoup.RetryAdvice
	Execute bool `json:",omitempty"`
}

// InvoicePayer pays an invoice through the payment provider (internal/stripe.Executor).
type InvoicePayer interface {
	Pay(ctx context.Context, invoiceID string, n int) (stripe.PayResult, error)
}

// PayInvoiceInput is attempt N (the run's N-th advice) to pay the invoice.
type PayInvoiceInput struct {
	InvoiceID string
	N         int
}

// PayInvoiceResult is the provider's answer; the outcome reaches the run through the
// provider's webhooks (invoice.paid, invoice.payment_failed) like any other payment.
type PayInvoiceResult struct {
	Paid        bool
	DeclineCode string `json:",omitempty"`
}

// PayInvoice retries the charge through Stripe with the idempotency key
// recoup-<invoice>-attempt-<n> (the same on every activity retry). A refusal (4xx other
// than a decline) is final (recoup.ErrTypeProviderRejected).
func (a *DunningActivities) PayInvoice(ctx context.Context, in PayInvoiceInput) (PayInvoiceResult, error) {
	if a.Payer == nil {
		return PayInvoiceResult{}, temporal.NewNonRetryableApplicationError("the Stripe executor is not enabled (RECOUP_STRIPE_EXECUTOR)", recoup.ErrTypeInvalidInput, nil)
	}
	res, err := a.Payer.Pay(ctx, in.InvoiceID, in.N)
	if err != nil {
		a.Metrics.ProviderError("stripe", err)
		if provider.IsPermanent(err) {
			return PayInvoiceResult{}, temporal.NewNonRetryableApplicationError(err.Error(), recoup.ErrTypeProviderRejected, err)
		}
		return PayInvoiceResult{}, err
	}
	a.logger(ctx).Info("invoice payment attempted through Stripe", "invoice_id", in.InvoiceID, "attempt", in.N, "paid", res.Paid, "decline_code", res.DeclineCode)
	return PayInvoiceResult{Paid: res.Paid, DeclineCode: res.DeclineCode}, nil
}

// AdviseRetry decides the retry advice for one failure (internal/model/retry) and sends it
// to billing as a signed dunning.retry_advice webhook, id "<run key>/retry-advice/<failure
// event id>" on every attempt (billing deduplicates by it: one advice per failure). Without
// a webhook it logs the advice; a 4xx is recorded as "rejected" and not retried.
func (a *DunningActivities) AdviseRetry(ctx context.Context, in AdviseRetryInput) (AdviseRetryResult, error) {
	pol := a.RetryPolicy
	if pol == nil {
		pol = retry.DefaultPolicy()
	}
	class := a.declineClass(in.Failure.Code)
	if in.TimeZone == "" && a.Store != nil {
		tz, err := a.customerZone(ctx, in.CustomerID)
		if err != nil {
			return AdviseRetryResult{}, err
		}
		in.TimeZone = tz
	}
	mi := retry.Input{Class: class, Network: retry.NetworkOfBIN(in.CardBIN), Code: in.Failure.Code, AdviceCode: in.Failure.AdviceCode,
		TimeZone: in.TimeZone, Country: in.Country, Now: in.Now, CardUpdated: in.CardUpdated, RetryAfterCardUpdate: in.RetryAfterCardUpdate}
	for _, at := range in.Attempts {
		mi.Attempts = append(mi.Attempts, retry.Attempt{At: at.At, Code: at.Code})
	}
	adv := pol.Advise(mi)
	out := recoup.RetryAdvice{FailureEventID: in.Failure.EventID, Class: adv.Class, DoNotRetry: adv.DoNotRetry,
		RetryAt: adv.RetryAt, Reason: adv.Reason, Remaining: adv.Remaining, AdvisedAt: in.Now, Delivery: "logged"}
	if a.Webhook == nil || !a.Webhook.Enabled() {
		a.logger(ctx).Info("retry advice not sent: BILLING_WEBHOOK_URL is not set", "invoice_id", in.InvoiceID,
			"class", string(out.Class), "do_not_retry", out.DoNotRetry, "retry_at", out.RetryAt, "reason", out.Reason)
		return AdviseRetryResult{Advice: out, Execute: a.Payer != nil && !out.DoNotRetry}, nil
	}
	err := a.Webhook.Send(ctx, webhook.Event{ID: in.WorkflowID + "/retry-advice/" + in.Failure.EventID,
		Type: recoup.WebhookRetryAdvice, Payload: retryAdvicePayload(in, out)}, time.Now())
	switch {
	case err != nil && provider.IsPermanent(err):
		a.Metrics.ProviderError("webhook", err)
		out.Delivery = "rejected"
		a.logger(ctx).Warn("billing rejected the retry advice", "invoice_id", in.InvoiceID, "error", err)
	case err != nil:
		a.Metrics.ProviderError("webhook", err)
		return AdviseRetryResult{}, err
	default:
		out.Delivery = "sent"
	}
	return AdviseRetryResult{Advice: out, Execute: a.Payer != nil && !out.DoNotRetry}, nil
}

// customerZone is the customer's zone as the allowed hours read it (the profile's zone, else
// the phone number's or the locale's first); "" (UTC) for a customer Recoup does not know.
func (a *DunningActivities) customerZone(ctx context.Context, customerID string) (string, error) {
	c, err := a.Store.GetCustomer(ctx, customerID)
	if errors.Is(err, postgres.ErrUnknownCustomer) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if z := policy.CustomerZones(policy.ZoneHints{TimeZone: c.TimeZone, Phone: c.Phone, Locale: c.Locale}); len(z.Locs) > 0 {
		return z.Locs[0].String(), nil
	}
	return "", nil
}

// retryAdvicePayload is the data of dunning.retry_advice (docs/events/README.md).
func retryAdvicePayload(in AdviseRetryInput, adv recoup.RetryAdvice) map[string]any {
	p := map[string]any{
		"workflow_id": in.WorkflowID, "invoice_id": in.InvoiceID, "customer_id": in.CustomerID,
		"failure_event_id": adv.FailureEventID, "class": string(adv.Class), "do_not_retry": adv.DoNotRetry,
		"reason": adv.Reason, "remaining_attempts": adv.Remaining, "attempts_so_far": len(in.Attempts),
		"advised_at": adv.AdvisedAt.UTC().Format(time.RFC3339),
	}
	if in.CardUpdated { // advised after a payment_method.updated
		p["card_updated"], p["retry_requested"] = true, in.RetryAfterCardUpdate
	}
	if !adv.DoNotRetry {
		p["retry_at"] = adv.RetryAt.UTC().Format(time.RFC3339)
	}
	return p
}

// declineClass is the class of a failure code: ClassifyDecline when set, else the active
// prompt set's decline table (prompts/declines.yaml); no code is DeclineUnknown.
func (a *DunningActivities) declineClass(code string) recoup.DeclineClass {
	switch {
	case code == "":
		return recoup.DeclineUnknown
	case a.ClassifyDecline != nil:
		return a.ClassifyDecline(code)
	case a.Prompts != nil:
		return a.Prompts().Declines.Classify(code).Class
	}
	return recoup.DeclineUnknown
}
