package stripe_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v83/webhook"

	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/stripe"
)

const (
	secret    = "whsec_test_current_0123456789abcdef"
	oldSecret = "whsec_test_previous_fedcba9876543210"
	created   = 1764410400 // 2025-11-29T10:00:00Z
	createdAt = "2025-11-29T10:00:00Z"
)

// event wraps a data.object in a Stripe event envelope like the ones Stripe sends.
func event(id, typ, object string) []byte {
	return []byte(fmt.Sprintf(`{
  "id": %q,
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": %d,
  "data": {
    "object": %s
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": %q
}`, id, created, object, typ))
}

// invoiceJSON is a Stripe invoice as sent in invoice.* events; the replacements patch fields
// ("key": old -> "key": new), so each case shows only what it changes.
func invoiceJSON(patch ...string) string {
	s := `{
      "id": "in_1QxYzAbCdEfGhIjK",
      "object": "invoice",
      "account_country": "US",
      "account_name": "Acme SaaS",
      "amount_due": 4900,
      "amount_paid": 0,
      "amount_remaining": 4900,
      "attempt_count": 2,
      "attempted": true,
      "auto_advance": true,
      "billing_reason": "subscription_cycle",
      "charge": null,
      "collection_method": "charge_automatically",
      "created": 1764406800,
      "currency": "usd",
      "customer": "cus_RbCdEfGhIjKlMn",
      "customer_address": {"city": "London", "country": "GB", "line1": "12 St James's Square", "line2": null, "postal_code": "SW1Y 4JH", "state": null},
      "customer_email": "ada@example.com",
      "customer_name": "Ada Lovelace",
      "customer_phone": "+1 415-555-0123",
      "customer_tax_exempt": "none",
      "last_finalization_error": null,
      "lines": {"object": "list", "data": [], "has_more": false, "total_count": 1, "url": "/v1/invoices/in_1QxYzAbCdEfGhIjK/lines"},
      "livemode": false,
      "metadata": {},
      "next_payment_attempt": 1764669600,
      "number": "ACME-0042",
      "paid": false,
      "payment_intent": null,
      "period_end": 1764406800,
      "period_start": 1761814800,
      "status": "open",
      "subtotal": 4900,
      "total": 4900
    }`
	for i := 0; i+1 < len(patch); i += 2 {
		if !strings.Contains(s, patch[i]) {
			panic("invoiceJSON: no " + patch[i])
		}
		s = strings.Replace(s, patch[i], patch[i+1], 1)
	}
	return s
}

func sign(payload []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts}).Header
}

func newVerifier(t *testing.T, secrets ...string) *stripe.Verifier {
	t.Helper()
	v, err := stripe.New(secrets, 0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		secrets   []string
		tolerance time.Duration
		wantErr   string
	}{
		{"one secret", []string{secret}, 0, ""},
		{"two secrets", []string{oldSecret, secret}, time.Minute, ""},
		{"no secrets", nil, 0, "no webhook signing secret"},
		{"empty list", []string{}, 0, "no webhook signing secret"},
		{"empty secret", []string{secret, ""}, 0, "secret 2 of 2 is empty"},
		{"blank secret", []string{"  "}, 0, "secret 1 of 1 is empty"},
		{"negative tolerance", []string{secret}, -time.Second, "tolerance must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := stripe.New(tt.secrets, tt.tolerance)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("New = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		object  string
		want    map[string]any // nil: ignored
		secrets []string       // default {secret}
	}{
		{
			name: "payment failed: ids, amount, attempt, snapshot; no country, no consents",
			typ:  "invoice.payment_failed", object: invoiceJSON(),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name: "payment failed: expanded charge with failure_code and card country, expanded customer with locale",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"charge": null`, `"charge": {"id": "ch_3QxY", "object": "charge", "amount": 4900, "failure_code": "expired_card", "failure_message": "Your card has expired.", "status": "failed", "payment_method_details": {"type": "card", "card": {"brand": "visa", "country": "de", "last4": "4242"}}}`,
				`"customer": "cus_RbCdEfGhIjKlMn"`, `"customer": {"id": "cus_RbCdEfGhIjKlMn", "object": "customer", "email": "ada@example.com", "name": "Ada Lovelace", "phone": null, "preferred_locales": ["fr-CA", "en"]}`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD", "failure_code": "expired_card", "issuer_country": "DE",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123", "locale": "fr-CA"}},
		},
		{
			name: "payment failed: payment_intent and charge as ids carry no failure code",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"payment_intent": null`, `"payment_intent": "pi_3QxYzAbCdEfGhIjK"`,
				`"charge": null`, `"charge": "ch_3QxYzAbCdEfGhIjK"`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name: "payment failed: expanded payment intent decline_code wins over code and charge",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"payment_intent": null`, `"payment_intent": {"id": "pi_3Qx", "object": "payment_intent", "status": "requires_payment_method", "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}`,
				`"charge": null`, `"charge": {"id": "ch_3Qx", "object": "charge", "failure_code": "card_declined"}`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD", "failure_code": "insufficient_funds",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name:   "payment failed: basil payments list with expanded payment intent code",
			typ:    "invoice.payment_failed",
			object: invoiceJSON(`"paid": false,`, `"payments": {"object": "list", "data": [{"id": "inpay_1", "object": "invoice_payment", "payment": {"type": "payment_intent", "payment_intent": {"id": "pi_9", "object": "payment_intent", "last_payment_error": {"code": "authentication_required"}}}, "status": "open"}], "has_more": false},`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD", "failure_code": "authentication_required",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name: "payment failed: last_finalization_error code as last resort",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"last_finalization_error": null`, `"last_finalization_error": {"code": "customer_tax_location_invalid", "type": "invalid_request_error"}`,
				`"payment_intent": null`, `"payment_intent": "pi_3QxYzAbCdEfGhIjK"`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD", "failure_code": "customer_tax_location_invalid",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name: "payment failed: phone without country code and invalid email are dropped, not fatal",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"customer_phone": "+1 415-555-0123"`, `"customer_phone": "(415) 555-0123"`,
				`"customer_email": "ada@example.com"`, `"customer_email": "ada at example"`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD",
				"customer": map[string]any{"name": "Ada Lovelace"}},
		},
		{
			name: "payment failed: impossible E.164 number dropped; no contact data at all means no snapshot",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"customer_phone": "+1 415-555-0123"`, `"customer_phone": "+1 000"`,
				`"customer_email": "ada@example.com"`, `"customer_email": null`, `"customer_name": "Ada Lovelace"`, `"customer_name": null`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 4900.0, "currency": "USD"},
		},
		{
			name: "payment failed: amount_due 0 falls back to amount_remaining; attempt_count 0 gives no attempt_id",
			typ:  "invoice.payment_failed",
			object: invoiceJSON(`"amount_due": 4900`, `"amount_due": 0`, `"amount_remaining": 4900`, `"amount_remaining": 2500`,
				`"attempt_count": 2`, `"attempt_count": 0`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt,
				"amount_minor": 2500.0, "currency": "USD",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name:   "payment failed: zero-decimal JPY amount kept as is",
			typ:    "invoice.payment_failed",
			object: invoiceJSON(`"currency": "usd"`, `"currency": "jpy"`, `"amount_due": 4900`, `"amount_due": 5000`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 5000.0, "currency": "JPY",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name:   "payment failed: ISK is two-decimal at Stripe, zero-decimal in Recoup",
			typ:    "invoice.payment_failed",
			object: invoiceJSON(`"currency": "usd"`, `"currency": "isk"`, `"amount_due": 4900`, `"amount_due": 750000`),
			want: map[string]any{"type": "payment.failed", "gateway": "stripe", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"customer_id": "cus_RbCdEfGhIjKlMn", "occurred_at": createdAt, "attempt_id": "attempt-2",
				"amount_minor": 7500.0, "currency": "ISK",
				"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}},
		},
		{
			name:   "invoice.paid recovers",
			typ:    "invoice.paid",
			object: invoiceJSON(`"status": "open"`, `"status": "paid"`, `"amount_remaining": 4900`, `"amount_remaining": 0`),
			want:   map[string]any{"type": "payment.succeeded", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK", "occurred_at": createdAt, "gateway": "stripe"},
		},
		{
			name:   "invoice.payment_succeeded recovers",
			typ:    "invoice.payment_succeeded",
			object: invoiceJSON(`"status": "open"`, `"status": "paid"`),
			want:   map[string]any{"type": "payment.succeeded", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK", "occurred_at": createdAt, "gateway": "stripe"},
		},
		{
			name:   "subscription deleted with latest_invoice id cancels",
			typ:    "customer.subscription.deleted",
			object: `{"id": "sub_1QxY", "object": "subscription", "customer": "cus_RbCdEfGhIjKlMn", "status": "canceled", "canceled_at": 1764410400, "latest_invoice": "in_1QxYzAbCdEfGhIjK"}`,
			want: map[string]any{"type": "dunning.cancel", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"occurred_at": createdAt, "reason": "stripe subscription deleted"},
		},
		{
			name:   "subscription deleted with expanded latest_invoice cancels",
			typ:    "customer.subscription.deleted",
			object: `{"id": "sub_1QxY", "object": "subscription", "customer": "cus_RbCdEfGhIjKlMn", "status": "canceled", "latest_invoice": ` + invoiceJSON() + `}`,
			want: map[string]any{"type": "dunning.cancel", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK",
				"occurred_at": createdAt, "reason": "stripe subscription deleted"},
		},
		{
			name:   "subscription deleted without latest_invoice is ignored",
			typ:    "customer.subscription.deleted",
			object: `{"id": "sub_1QxY", "object": "subscription", "customer": "cus_RbCdEfGhIjKlMn", "status": "canceled", "latest_invoice": null}`,
		},
		{
			name:   "subscription deleted with no latest_invoice field is ignored",
			typ:    "customer.subscription.deleted",
			object: `{"id": "sub_1QxY", "object": "subscription", "customer": "cus_RbCdEfGhIjKlMn", "status": "canceled"}`,
		},
		{
			name:   "customer.created is ignored",
			typ:    "customer.created",
			object: `{"id": "cus_RbCdEfGhIjKlMn", "object": "customer", "email": "ada@example.com", "name": "Ada Lovelace"}`,
		},
		{
			name: "rotated secret: the second secret matches",
			typ:  "invoice.paid", object: invoiceJSON(),
			secrets: []string{oldSecret, secret},
			want:    map[string]any{"type": "payment.succeeded", "event_id": "evt_1", "invoice_id": "in_1QxYzAbCdEfGhIjK", "occurred_at": createdAt, "gateway": "stripe"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{secret}
			}
			v := newVerifier(t, secrets...)
			payload := event("evt_1", tt.typ, tt.object)
			native, typ, ignored, err := v.Translate(payload, sign(payload, secret, time.Now()))
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if typ != tt.typ {
				t.Errorf("stripeType = %q, want %q", typ, tt.typ)
			}
			if tt.want == nil {
				if !ignored || native != nil {
					t.Fatalf("Translate = %s, ignored=%v; want ignored", native, ignored)
				}
				return
			}
			if ignored {
				t.Fatal("ignored, want a native event")
			}
			var got map[string]any
			if err := json.Unmarshal(native, &got); err != nil {
				t.Fatalf("native event is not JSON: %v\n%s", err, native)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("native event\n got %s\nwant %s", native, mustJSON(tt.want))
			}
			ev, err := events.Decode(native)
			if err != nil {
				t.Fatalf("events.Decode refused the native event: %v\n%s", err, native)
			}
			if ev.Type != tt.want["type"] || ev.EventID != "evt_1" || ev.OccurredAt.Format(time.RFC3339) != createdAt {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestTranslateErrors(t *testing.T) {
	now := time.Now()
	valid := event("evt_1", "invoice.payment_failed", invoiceJSON())
	tests := []struct {
		name     string
		payload  []byte
		header   string // "" with noHeader false: signed with secret
		noHeader bool
		want     error
		wantMsg  string
	}{
		{name: "wrong secret", payload: valid, header: sign(valid, "whsec_someone_else", now),
			want: stripe.ErrSignature, wantMsg: "no signature in the Stripe-Signature header matches any of the 2 configured secret(s)"},
		{name: "expired timestamp", payload: valid, header: sign(valid, secret, now.Add(-6*time.Minute)),
			want: stripe.ErrSignature, wantMsg: "older than the tolerance of 5m0s"},
		{name: "timestamp in the future beyond tolerance", payload: valid, header: sign(valid, secret, now.Add(10*time.Minute)),
			want: stripe.ErrSignature, wantMsg: "in the future, beyond the tolerance of 5m0s"},
		{name: "tampered body", payload: []byte(strings.Replace(string(valid), `"amount_due": 4900`, `"amount_due": 49`, 1)),
			header: sign(valid, secret, now), want: stripe.ErrSignature, wantMsg: "no signature"},
		{name: "missing header", payload: valid, noHeader: true,
			want: stripe.ErrSignature, wantMsg: "missing Stripe-Signature header"},
		{name: "malformed header", payload: valid, header: "garbage",
			want: stripe.ErrSignature, wantMsg: "malformed Stripe-Signature header"},
		{name: "header with a non-numeric timestamp", payload: valid, header: "t=yesterday,v1=00ff",
			want: stripe.ErrSignature, wantMsg: "timestamp is not a Unix time"},
		{name: "header without timestamp", payload: valid, header: "v1=" + strings.Repeat("ab", 32),
			want: stripe.ErrSignature, wantMsg: "has no timestamp"},
		{name: "header with only a v0 signature", payload: valid,
			header: strings.Replace(sign(valid, secret, now), "v1=", "v0=", 1),
			want:   stripe.ErrSignature, wantMsg: "no v1 signature"},
		{name: "non-JSON signed body", payload: []byte("hello, not json"), header: sign([]byte("hello, not json"), secret, now),
			want: stripe.ErrMalformed, wantMsg: "body is not a JSON object"},
		{name: "signed JSON that is not an event", payload: []byte(`{"object":"list","data":[]}`),
			header: sign([]byte(`{"object":"list","data":[]}`), secret, now),
			want:   stripe.ErrMalformed, wantMsg: `"object" is "list"`},
		{name: "created of the wrong type", payload: []byte(strings.Replace(string(valid), fmt.Sprint(created), `"yesterday"`, 1)),
			want: stripe.ErrMalformed},
		{name: "amount_due and amount_remaining both 0",
			payload: event("evt_1", "invoice.payment_failed", invoiceJSON(`"amount_due": 4900`, `"amount_due": 0`, `"amount_remaining": 4900`, `"amount_remaining": 0`)),
			want:    stripe.ErrMalformed, wantMsg: "nothing is owed: data.object.amount_due is 0 and amount_remaining is 0"},
		{name: "invoice without customer",
			payload: event("evt_1", "invoice.payment_failed", invoiceJSON(`"customer": "cus_RbCdEfGhIjKlMn"`, `"customer": null`)),
			want:    stripe.ErrMalformed, wantMsg: "the invoice has no customer"},
		{name: "unknown currency is refused by events.Decode",
			payload: event("evt_1", "invoice.payment_failed", invoiceJSON(`"currency": "usd"`, `"currency": "zzz"`)),
			want:    stripe.ErrMalformed, wantMsg: "does not make a valid payment.failed event"},
		{name: "payment_failed whose object is not an invoice",
			payload: event("evt_1", "invoice.payment_failed", `{"id": "sub_1", "object": "subscription"}`),
			want:    stripe.ErrMalformed, wantMsg: `data.object is a "subscription", want an invoice`},
		{name: "invoice.paid without invoice id",
			payload: event("evt_1", "invoice.paid", invoiceJSON(`"id": "in_1QxYzAbCdEfGhIjK"`, `"id": null`)),
			want:    stripe.ErrMalformed, wantMsg: "not a usable invoice id"},
		{name: "charge that is neither id nor object",
			payload: event("evt_1", "invoice.payment_failed", invoiceJSON(`"charge": null`, `"charge": 42`)),
			want:    stripe.ErrMalformed, wantMsg: "charge: must be an id string or an object"},
		{name: "event without id",
			payload: []byte(strings.Replace(string(valid), `"id": "evt_1"`, `"id": ""`, 1)),
			want:    stripe.ErrMalformed, wantMsg: "event id"},
	}
	v := newVerifier(t, oldSecret, secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == "" && !tt.noHeader {
				header = sign(tt.payload, secret, now)
			}
			native, _, ignored, err := v.Translate(tt.payload, header)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Translate error = %v, want %v", err, tt.want)
			}
			other := stripe.ErrMalformed
			if tt.want == stripe.ErrMalformed {
				other = stripe.ErrSignature
			}
			if errors.Is(err, other) {
				t.Errorf("error %v also matches %v", err, other)
			}
			if native != nil || ignored {
				t.Errorf("Translate returned native=%s ignored=%v with an error", native, ignored)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			for _, s := range []string{secret, oldSecret, "whsec_someone_else"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestTolerance(t *testing.T) {
	payload := event("evt_1", "invoice.paid", invoiceJSON())
	tests := []struct {
		name      string
		tolerance time.Duration
		age       time.Duration // negative: in the future
		wantErr   bool
	}{
		{"default, 4 minutes old", 0, 4 * time.Minute, false},
		{"default, 6 minutes old", 0, 6 * time.Minute, true},
		{"default, 4 minutes ahead (clock skew)", 0, -4 * time.Minute, false},
		{"1 minute, 2 minutes old", time.Minute, 2 * time.Minute, true},
		{"1 minute, 2 minutes ahead", time.Minute, -2 * time.Minute, true},
		{"1 hour, 50 minutes old", time.Hour, 50 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := stripe.New([]string{secret}, tt.tolerance)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = v.Translate(payload, sign(payload, secret, time.Now().Add(-tt.age)))
			if tt.wantErr != (err != nil) {
				t.Fatalf("Translate error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, stripe.ErrSignature) {
				t.Fatalf("error %v is not ErrSignature", err)
			}
		})
	}
}

// TestConcurrent runs one Verifier from many goroutines (meaningful under -race).
func TestConcurrent(t *testing.T) {
	v := newVerifier(t, oldSecret, secret)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := event(fmt.Sprintf("evt_%d", i), "invoice.payment_failed", invoiceJSON())
			native, _, _, err := v.Translate(payload, sign(payload, secret, time.Now()))
			if err == nil {
				_, err = events.Decode(native)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
