package stripe_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/events"
)

// Recoup refuses control characters in a customer name; a Stripe name with a line break is
// cleaned, not a reason to refuse the webhook (Stripe would retry it for days).
func TestStripeNameWithControlCharactersIsCleanedNotRefused(t *testing.T) {
	v := newVerifier(t, secret)
	payload := event("evt_1", "invoice.payment_failed", invoiceJSON(`"customer_name": "Ada Lovelace"`, `"customer_name": "Ada\nLovelace\t\u0007"`,
		`"customer_email": "ada@example.com"`, `"customer_email": "`+strings.Repeat("a", 250)+`@example.com"`))
	native, _, _, err := v.Translate(payload, sign(payload, secret, time.Now()))
	if err != nil {
		t.Fatalf("Translate refused the webhook: %v", err)
	}
	var got struct {
		Customer map[string]any `json:"customer"`
	}
	if err := json.Unmarshal(native, &got); err != nil {
		t.Fatal(err)
	}
	if got.Customer["name"] != "Ada Lovelace" {
		t.Errorf("name = %q, want %q", got.Customer["name"], "Ada Lovelace")
	}
	if _, ok := got.Customer["email"]; ok {
		t.Errorf("a %d-character email was kept; events accept at most %d", 262, events.MaxEmailLen)
	}
	if _, err := events.Decode(native); err != nil {
		t.Errorf("events.Decode refused the native event: %v", err)
	}
}
