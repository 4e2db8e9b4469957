package stripe_test

import (
	"context"
	"testing"

	"github.com/recoup-dunning/recoup/internal/provider"
)

// a retry of PayInvoice that overlaps the first request (the 30 s client timeout
// fired, the worker retried, Stripe still holds the key) gets 409 idempotency_key_in_use.
// That is "try again shortly", not a refusal; the executor makes it permanent, so the
// attempt is recorded "failed" and never asked again for its outcome.
func TestIdempotencyKeyInUseIsRetryable(t *testing.T) {
	_, ex := newAPI(t, 409, `{"error":{"type":"idempotency_error","code":"idempotency_key_in_use","message":"There is currently another in-progress request using this Stripe-Idempotency-Key."}}`)
	if _, err := ex.Pay(context.Background(), "in_42", 1); err == nil || provider.IsPermanent(err) {
		t.Fatalf("409 idempotency_key_in_use: %v, want a retryable error", err)
	}
}
