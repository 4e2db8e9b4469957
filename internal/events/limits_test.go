package events

import (
	"fmt"
	"strings"
	"testing"
)

// The payment.failed schema and CheckCustomerText (which the customer import uses too) set
// the same limits, so an event and an import refuse the same profiles.
func TestSnapshotLimitsAgreeWithSchema(t *testing.T) {
	_, docs := publishedSchemas(t)
	props := docs["payment.failed"]["properties"].(map[string]any)["customer"].(map[string]any)["properties"].(map[string]any)
	for field, want := range map[string]int{"name": MaxNameLen, "email": MaxEmailLen, "locale": MaxLocaleLen,
		"time_zone": MaxTimeZoneLen, "plan": MaxPlanLen} {
		if got := fmt.Sprint(props[field].(map[string]any)["maxLength"]); got != fmt.Sprint(want) {
			t.Errorf("schema customer.%s maxLength = %s, Go limit = %d", field, got, want)
		}
	}
	for _, field := range []string{"name", "plan"} {
		if p := props[field].(map[string]any)["pattern"]; p != controlPattern {
			t.Errorf("schema customer.%s pattern = %q, want the control-character pattern %q", field, p, controlPattern)
		}
	}
}

func TestCustomerTextOverLimitRefusedInEvents(t *testing.T) {
	tests := []struct{ field, value, want string }{
		{"name", strings.Repeat("é", MaxNameLen+1), "customer.name: longer than 200 characters"},
		{"plan", strings.Repeat("p", MaxPlanLen+1), "customer.plan: longer than 64 characters"},
		{"locale", "en" + strings.Repeat("-abcdefgh", 4), "customer.locale: longer than 35 characters"},
		{"time_zone", "America/" + strings.Repeat("X", 60), "customer.time_zone: longer than 64 characters"},
		{"email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com", "customer.email:"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(`{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":1,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z","customer":{"` +
			tt.field + `":"` + tt.value + `"}}`))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s of %d characters: error %v, want %q", tt.field, len([]rune(tt.value)), err, tt.want)
		}
	}
	// At the limit is fine.
	if _, err := Decode([]byte(`{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":1,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z","customer":{"name":"` +
		strings.Repeat("é", MaxNameLen) + `"}}`)); err != nil {
		t.Errorf("a 200-character name was refused: %v", err)
	}
}

func TestCustomerNameWithControlCharacterRefusedInEvents(t *testing.T) {
	for _, name := range []string{`Ada\nLovelace`, `Ada\tLovelace`, `Ada\u0007`, `Ada\u0085`, `Ada\u2028Lovelace`, `Ada\r\nBcc: x@evil.test`} {
		_, err := Decode([]byte(`{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":1,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z","customer":{"name":"` + name + `"}}`))
		if err == nil || !strings.Contains(err.Error(), "customer.name: must not contain control characters") {
			t.Errorf("name %s: error %v, want one about control characters", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "Ada") {
			t.Errorf("name %s: the error repeats the name: %v", name, err)
		}
	}
	if err := CheckCustomerText("name", "Zoë O'Brien-Łukasz 李"); err != nil {
		t.Errorf("an ordinary international name was refused: %v", err)
	}
}

// Codes ISO 4217 withdrew are refused on payment.failed, naming the replacement; current
// ones that x/text did not know (VES, MRU, SLE) are accepted.
func TestWithdrawnCurrencyRefusedInEventsCurrentAccepted(t *testing.T) {
	ev := func(cur string) error {
		_, err := Decode([]byte(`{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":1,"currency":"` + cur + `","occurred_at":"2026-11-29T10:00:00Z"}`))
		return err
	}
	for _, cur := range []string{"VES", "MRU", "SLE", "ZWG", "XCG", "ves"} {
		if err := ev(cur); err != nil {
			t.Errorf("currency %s refused: %v", cur, err)
		}
	}
	for cur, want := range map[string]string{"VEF": "use VES", "MRO": "use MRU", "HRK": "use EUR", "SLL": "use SLE", "ZWL": "use ZWG"} {
		if err := ev(cur); err == nil || !strings.Contains(err.Error(), "currency: "+cur+" was withdrawn from ISO 4217; "+want) {
			t.Errorf("currency %s: error %v, want it withdrawn (%s)", cur, err, want)
		}
	}
}

// A failure or advice code is at most 128 characters, in every event type that carries one:
// the detector is fed batches of codes, and a batch of 250 KB codes exceeded what one signal
// to Temporal may carry, stopping the feed and every run start behind it.
func TestLongCodesAreRefusedWithTheField(t *testing.T) {
	long := strings.Repeat("c", 129)
	for _, tc := range []struct{ typ, field string }{
		{"payment.failed", "failure_code"}, {"payment.failed", "advice_code"},
		{"payment.retry_failed", "failure_code"}, {"payment.retry_failed", "advice_code"},
	} {
		body := `{"type":"` + tc.typ + `","event_id":"e1","invoice_id":"i1","customer_id":"c1","attempt_id":"a1","amount_minor":1,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z","` + tc.field + `":"` + long + `"}`
		_, err := Decode([]byte(body))
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s with a %d-character %s: error %v, want one naming the field", tc.typ, len(long), tc.field, err)
		}
		ok := strings.Replace(body, long, strings.Repeat("c", 128), 1)
		if _, err := Decode([]byte(ok)); err != nil {
			t.Errorf("%s with a 128-character %s refused: %v", tc.typ, tc.field, err)
		}
	}
}
