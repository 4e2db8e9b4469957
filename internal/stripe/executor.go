package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v83"

	"github.com/recoup-dunning/recoup/internal/provider"
)

// Executor retries a failed invoice's charge through Stripe's API (POST
// /v1/invoices/{id}/pay) at the time Recoup advised: the optional Stripe executor
// (RECOUP_STRIPE_EXECUTOR=1 with STRIPE_API_KEY). The outcome reaches the run the usual way,
// through Stripe's invoice.paid / invoice.payment_failed webhooks.
type Executor struct {
	client *stripe.Client
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	APIKey  string // STRIPE_API_KEY
	BaseURL string // STRIPE_API_BASE: "" for api.stripe.com; stripe-mock or a test server otherwise
}

// NewExecutor returns an Executor; it refuses an empty key.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("stripe executor: STRIPE_API_KEY is required with RECOUP_STRIPE_EXECUTOR=1")
	}
	bc := &stripe.BackendConfig{HTTPClient: &http.Client{Timeout: 30 * time.Second}, MaxNetworkRetries: stripe.Int64(0)}
	if cfg.BaseURL != "" {
		bc.URL = stripe.String(cfg.BaseURL)
	}
	return &Executor{client: stripe.NewClient(cfg.APIKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}, nil
}

// AttemptKey is the Idempotency-Key of attempt n on an invoice: the same on every retry of
// the activity, so Stripe charges an attempt at most once.
func AttemptKey(invoiceID string, n int) string {
	return fmt.Sprintf("recoup-%s-attempt-%d", invoiceID, n)
}

// PayResult is what Stripe answered.
type PayResult struct {
	Paid        bool
	DeclineCode string // when the card was declined (HTTP 402)
}

// Pay asks Stripe to pay the invoice with attempt n's idempotency key. A decline (402) is a
// result, not an error: the attempt happened. Other 4xx are permanent *provider.Error
// (e.g. the invoice is already paid or void), except 409 idempotency_key_in_use (an earlier
// request with the same key is still in flight: retrying with the key gets its answer);
// 5xx and transport errors are retryable.
func (e *Executor) Pay(ctx context.Context, invoiceID string, n int) (PayResult, error) {
	params := &stripe.InvoicePayParams{}
	params.SetIdempotencyKey(AttemptKey(invoiceID, n))
	inv, err := e.client.V1Invoices.Pay(ctx, invoiceID, params)
	if err == nil {
		return PayResult{Paid: inv.Status == stripe.InvoiceStatusPaid}, nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return PayResult{}, err
	}
	if se.HTTPStatusCode == http.StatusPaymentRequired {
		code := string(se.DeclineCode)
		if code == "" {
			code = string(se.Code)
		}
		return PayResult{DeclineCode: code}, nil
	}
	pe := provider.FromStatus("stripe", se.HTTPStatusCode, string(se.Code), se.Msg)
	if se.HTTPStatusCode == http.StatusConflict && se.Code == stripe.ErrorCodeIdempotencyKeyInUse {
		pe.Permanent = false // the first request with this key is still running: ask again
	}
	return PayResult{}, pe
}
