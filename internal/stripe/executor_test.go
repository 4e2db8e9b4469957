package stripe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/stripe"
)

// stripeAPI stands in for api.stripe.com's POST /v1/invoices/{id}/pay, recording what
// stripe-go sent: the path, the Idempotency-Key header and the key's bearer auth.
type stripeAPI struct {
	mu       sync.Mutex
	paths    []string
	keys     []string
	auth     []string
	status   int
	response string
}

func (s *stripeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths = append(s.paths, r.Method+" "+r.URL.Path)
	s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	_, _ = w.Write([]byte(s.response))
}

func newAPI(t *testing.T, status int, response string) (*stripeAPI, *stripe.Executor) {
	api := &stripeAPI{status: status, response: response}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ex, err := stripe.NewExecutor(stripe.ExecutorConfig{APIKey: "sk_test_executor", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return api, ex
}

func TestExecutorPaysTheInvoiceWithOneIdempotencyKeyPerAttempt(t *testing.T) {
	api, ex := newAPI(t, 200, `{"id":"in_42","object":"invoice","status":"paid"}`)
	res, err := ex.Pay(context.Background(), "in_42", 2)
	if err != nil || !res.Paid {
		t.Fatalf("pay: %+v, %v", res, err)
	}
	if api.paths[0] != "POST /v1/invoices/in_42/pay" || api.keys[0] != "recoup-in_42-attempt-2" || api.auth[0] != "Bearer sk_test_executor" {
		t.Fatalf("request %s, Idempotency-Key %q, auth %q", api.paths[0], api.keys[0], api.auth[0])
	}
}

func TestExecutorReportsADeclineAsAResultNotAnError(t *testing.T) {
	_, ex := newAPI(t, 402, `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}`)
	res, err := ex.Pay(context.Background(), "in_42", 1)
	if err != nil || res.Paid || res.DeclineCode != "insufficient_funds" {
		t.Fatalf("declined pay: %+v, %v", res, err)
	}
}

func TestExecutorRefusalIsPermanentAndOutageRetryable(t *testing.T) {
	_, ex := newAPI(t, 400, `{"error":{"type":"invalid_request_error","code":"invoice_payment_intent_requires_action","message":"This invoice is already paid"}}`)
	if _, err := ex.Pay(context.Background(), "in_42", 1); !provider.IsPermanent(err) {
		t.Fatalf("400: %v, want a permanent error", err)
	}
	_, ex = newAPI(t, 503, `{"error":{"type":"api_error","message":"unavailable"}}`)
	if _, err := ex.Pay(context.Background(), "in_42", 1); err == nil || provider.IsPermanent(err) {
		t.Fatalf("503: %v, want a retryable error", err)
	}
}

func TestExecutorNeedsAKey(t *testing.T) {
	if _, err := stripe.NewExecutor(stripe.ExecutorConfig{}); err == nil {
		t.Fatal("an executor without STRIPE_API_KEY was accepted")
	}
}
