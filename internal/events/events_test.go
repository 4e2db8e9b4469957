package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
)

// paymentFailed is a valid payment.failed event with a full customer snapshot.
func paymentFailed() map[string]any {
	return map[string]any{
		"type":         "payment.failed",
		"event_id":     "evt_001",
		"invoice_id":   "inv_001",
		"customer_id":  "cus_001",
		"attempt_id":   "att_1",
		"amount_minor": 4900,
		"currency":     "usd",
		"failure_code": "card_declined",
		"occurred_at":  "2026-11-29T10:00:00+01:00",
		"customer": map[string]any{
			"name":          "Ada Lovelace",
			"email":         " ada@example.com ",
			"phone":         "+1 (415) 555-2671",
			"locale":        "en-GB",
			"time_zone":     "Europe/London",
			"plan":          "pro",
			"email_consent": true,
			"sms_consent":   false,
		},
	}
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func customer(m map[string]any) map[string]any { return m["customer"].(map[string]any) }

// problems decodes data, requires a *ValidationError and returns its problems.
func problems(t *testing.T, data []byte) []string {
	t.Helper()
	ev, err := events.Decode(data)
	if err == nil {
		t.Fatalf("Decode(%s) succeeded (%+v), want an error", data, ev)
	}
	var ve *events.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Decode error %T %v is not a *events.ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatalf("ValidationError without problems")
	}
	if !strings.HasPrefix(err.Error(), "invalid event: ") {
		t.Errorf("error %q does not start with \"invalid event: \"", err)
	}
	if ev.Type != "" || ev.EventID != "" || ev.Raw != nil {
		t.Errorf("Decode returned a half-filled event with its error: %+v", ev)
	}
	return ve.Problems
}

func hasProblem(ps []string, prefix, contains string) bool {
	for _, p := range ps {
		if strings.HasPrefix(p, prefix) && strings.Contains(p, contains) {
			return true
		}
	}
	return false
}

func TestDecodePaymentFailed(t *testing.T) {
	in := encode(t, paymentFailed())
	ev, err := events.Decode(in)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := events.Event{
		Type: recoup.EventPaymentFailed, EventID: "evt_001", InvoiceID: "inv_001", CustomerID: "cus_001",
		AttemptID: "att_1", AmountMinor: 4900, Currency: "USD", FailureCode: "card_declined",
		OccurredAt: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC),
	}
	got := ev
	got.Customer, got.Raw = nil, nil
	if !equalEvent(got, want) {
		t.Errorf("Decode = %+v\nwant %+v", got, want)
	}
	if ev.OccurredAt.Location() != time.UTC {
		t.Errorf("OccurredAt location = %v, want UTC", ev.OccurredAt.Location())
	}
	c := ev.Customer
	if c == nil {
		t.Fatal("customer snapshot missing")
	}
	if c.Phone != "+14155552671" {
		t.Errorf("phone = %q, want E.164 +14155552671", c.Phone)
	}
	if c.Email != "ada@example.com" {
		t.Errorf("email = %q, want it trimmed", c.Email)
	}
	if c.Name != "Ada Lovelace" || c.Locale != "en-GB" || c.TimeZone != "Europe/London" || c.Plan != "pro" {
		t.Errorf("snapshot = %+v", *c)
	}
	if c.EmailConsent == nil || !*c.EmailConsent || c.SMSConsent == nil || *c.SMSConsent {
		t.Errorf("consents = %v, %v; want true, false", c.EmailConsent, c.SMSConsent)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Raw, compact.Bytes()) {
		t.Errorf("Raw = %s, want the compacted input %s", ev.Raw, compact.Bytes())
	}
}

func equalEvent(a, b events.Event) bool {
	return a.Type == b.Type && a.EventID == b.EventID && a.InvoiceID == b.InvoiceID && a.CustomerID == b.CustomerID &&
		a.OccurredAt.Equal(b.OccurredAt) && a.AttemptID == b.AttemptID && a.AmountMinor == b.AmountMinor &&
		a.Currency == b.Currency && a.FailureCode == b.FailureCode && a.Reason == b.Reason && a.Channel == b.Channel &&
		a.RetryRequested == b.RetryRequested
}

func TestDecodeRawIsCompactJSON(t *testing.T) {
	in := []byte("{\n  \"type\": \"dunning.cancel\",\n  \"event_id\": \"evt_9\",\n  \"invoice_id\": \"inv_9\",\n" +
		"  \"reason\": \"customer churned\",\n  \"occurred_at\": \"2026-11-29T10:00:00.123456Z\"\n}\n")
	ev, err := events.Decode(in)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := `{"type":"dunning.cancel","event_id":"evt_9","invoice_id":"inv_9","reason":"customer churned","occurred_at":"2026-11-29T10:00:00.123456Z"}`
	if string(ev.Raw) != want {
		t.Errorf("Raw = %s\nwant %s", ev.Raw, want)
	}
	if ev.Reason != "customer churned" {
		t.Errorf("Reason = %q", ev.Reason)
	}
	if ev.OccurredAt.Nanosecond() != 123456000 {
		t.Errorf("OccurredAt = %v, lost its fraction", ev.OccurredAt)
	}
	if ev.Customer != nil || ev.AmountMinor != 0 {
		t.Errorf("cancel event carries payment facts: %+v", ev)
	}
}

func TestDecodeOtherTypes(t *testing.T) {
	base := `"event_id":"evt_2","invoice_id":"inv_2","occurred_at":"2026-11-29T10:00:00Z"`
	tests := []struct {
		json string
		want events.Event
	}{
		{`{"type":"payment.retry_succeeded",` + base + `,"attempt_id":"att_2"}`,
			events.Event{Type: recoup.EventRetrySucceeded, AttemptID: "att_2"}},
		{`{"type":"payment.retry_failed",` + base + `,"attempt_id":"att_2","failure_code":"expired_card"}`,
			events.Event{Type: recoup.EventRetryFailed, AttemptID: "att_2", FailureCode: "expired_card"}},
		{`{"type":"payment.recovered",` + base + `}`, events.Event{Type: recoup.EventRecovered}},
		{`{"type":"payment.succeeded",` + base + `,"gateway":"adyen","card_bin":"41111122","issuer_country":"de"}`,
			events.Event{Type: recoup.EventPaymentSucceeded, Gateway: "adyen", CardBIN: "411111", IssuerCountry: "DE"}},
		{`{"type":"dunning.cancel",` + base + `,"reason":"written off"}`, events.Event{Type: recoup.EventCancel, Reason: "written off"}},
		{`{"type":"dunning.pause",` + base + `}`, events.Event{Type: recoup.EventPause}},
		{`{"type":"dunning.resume",` + base + `}`, events.Event{Type: recoup.EventResume}},
		{`{"type":"dunning.opt_out",` + base + `,"channel":"sms"}`, events.Event{Type: recoup.EventOptOut, Channel: recoup.ChannelSMS}},
		{`{"type":"dunning.opt_out",` + base + `,"channel":"email"}`, events.Event{Type: recoup.EventOptOut, Channel: recoup.ChannelEmail}},
		{`{"type":"payment_method.updated",` + base + `,"retry_requested":true}`, events.Event{Type: recoup.EventPaymentMethodUpdated, RetryRequested: true}},
		{`{"type":"payment_method.updated",` + base + `,"retry_requested":null}`, events.Event{Type: recoup.EventPaymentMethodUpdated}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Type, func(t *testing.T) {
			ev, err := events.Decode([]byte(tt.json))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.want.EventID, tt.want.InvoiceID = "evt_2", "inv_2"
			tt.want.OccurredAt = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
			if !equalEvent(ev, tt.want) {
				t.Errorf("Decode = %+v\nwant %+v", ev, tt.want)
			}
		})
	}
}

func TestDecodeAcceptsEveryListedType(t *testing.T) {
	if len(events.Types) != 10 {
		t.Errorf("Types = %v, want the 10 documented event types", events.Types)
	}
	for _, typ := range events.Types {
		m := map[string]any{"type": typ, "event_id": "evt_1", "invoice_id": "inv_1", "occurred_at": "2026-11-29T10:00:00Z",
			"attempt_id": "att_1", "channel": "email"}
		if typ == recoup.EventPaymentFailed {
			m["customer_id"], m["amount_minor"], m["currency"] = "cus_1", 100, "EUR"
		}
		if _, err := events.Decode(encode(t, m)); err != nil {
			t.Errorf("type %s: %v", typ, err)
		}
	}
}

func TestDecodeLowerCaseCurrency(t *testing.T) {
	for _, cur := range []string{"eur", "Eur", " jpy "} {
		m := paymentFailed()
		m["currency"] = cur
		ev, err := events.Decode(encode(t, m))
		if err != nil {
			t.Fatalf("currency %q: %v", cur, err)
		}
		if want := strings.ToUpper(strings.TrimSpace(cur)); ev.Currency != want {
			t.Errorf("currency %q decoded as %q, want %q", cur, ev.Currency, want)
		}
	}
}

func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(m map[string]any)
		field    string // the problem must start with "field:"
		contains string
	}{
		{"missing type", func(m map[string]any) { delete(m, "type") }, "type:", "required"},
		{"blank type", func(m map[string]any) { m["type"] = "  " }, "type:", "required"},
		{"unknown type", func(m map[string]any) { m["type"] = "payment.exploded" }, "type:", `"payment.exploded" is not one of`},
		{"missing event_id", func(m map[string]any) { delete(m, "event_id") }, "event_id:", "required"},
		{"event_id with @", func(m map[string]any) { m["event_id"] = "ada@example.com" }, "event_id:", "must be 1-128 letters"},
		{"event_id with space", func(m map[string]any) { m["event_id"] = "evt 1" }, "event_id:", "must be 1-128 letters"},
		{"event_id too long", func(m map[string]any) { m["event_id"] = strings.Repeat("e", 129) }, "event_id:", "1-128"},
		{"missing invoice_id", func(m map[string]any) { delete(m, "invoice_id") }, "invoice_id:", "required"},
		{"invoice_id with slash", func(m map[string]any) { m["invoice_id"] = "inv/1" }, "invoice_id:", "must be"},
		{"missing occurred_at", func(m map[string]any) { delete(m, "occurred_at") }, "occurred_at:", "required"},
		{"invalid occurred_at", func(m map[string]any) { m["occurred_at"] = "29/11/2026 10:00" }, "occurred_at:", "not an RFC 3339 time"},
		{"occurred_at without zone", func(m map[string]any) { m["occurred_at"] = "2026-11-29T10:00:00" }, "occurred_at:", "not an RFC 3339 time"},
		{"missing customer_id", func(m map[string]any) { delete(m, "customer_id") }, "customer_id:", "required"},
		{"customer_id with @", func(m map[string]any) { m["customer_id"] = "ada@example.com" }, "customer_id:", "must be"},
		{"attempt_id with space", func(m map[string]any) { m["attempt_id"] = "att 1" }, "attempt_id:", "must be"},
		{"missing amount_minor", func(m map[string]any) { delete(m, "amount_minor") }, "amount_minor:", "required"},
		{"zero amount", func(m map[string]any) { m["amount_minor"] = 0 }, "amount_minor:", "must be positive, got 0"},
		{"negative amount", func(m map[string]any) { m["amount_minor"] = -100 }, "amount_minor:", "must be positive, got -100"},
		{"amount as string", func(m map[string]any) { m["amount_minor"] = "4900" }, "amount_minor:", "must be an integer"},
		{"fractional amount", func(m map[string]any) { m["amount_minor"] = 49.5 }, "amount_minor:", "must be an integer"},
		{"missing currency", func(m map[string]any) { delete(m, "currency") }, "currency:", "required"},
		{"unknown currency", func(m map[string]any) { m["currency"] = "XYZ" }, "currency:", `"XYZ" is not a known ISO 4217`},
		{"two-letter currency", func(m map[string]any) { m["currency"] = "US" }, "currency:", "3-letter"},
		{"invalid email", func(m map[string]any) { customer(m)["email"] = "ada(at)example.com" }, "customer.email:", "not a valid email"},
		{"email with display name", func(m map[string]any) { customer(m)["email"] = "Ada <ada@example.com>" }, "customer.email:", "not a valid email"},
		{"phone without +", func(m map[string]any) { customer(m)["phone"] = "4155552671" }, "customer.phone:", "E.164"},
		{"invalid phone", func(m map[string]any) { customer(m)["phone"] = "+1 000" }, "customer.phone:", "not a valid phone number"},
		{"invalid time zone", func(m map[string]any) { customer(m)["time_zone"] = "Mars/Olympus_Mons" }, "customer.time_zone:", "not an IANA time zone"},
		{"Local time zone", func(m map[string]any) { customer(m)["time_zone"] = "Local" }, "customer.time_zone:", "not an IANA time zone"},
		{"invalid locale", func(m map[string]any) { customer(m)["locale"] = "not a locale!" }, "customer.locale:", "not a BCP 47"},
		{"name too long", func(m map[string]any) { customer(m)["name"] = strings.Repeat("n", 201) }, "customer.name:", "200"},
		{"plan too long", func(m map[string]any) { customer(m)["plan"] = strings.Repeat("p", 65) }, "customer.plan:", "64"},
		{"consent as string", func(m map[string]any) { customer(m)["sms_consent"] = "yes" }, "customer.sms_consent:", "true or false"},
		{"unknown field", func(m map[string]any) { m["amount"] = 4900 }, "amount:", "unknown field"},
		{"type as number", func(m map[string]any) { m["type"] = 7 }, "type:", "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := paymentFailed()
			tt.mutate(m)
			ps := problems(t, encode(t, m))
			if !hasProblem(ps, tt.field, tt.contains) {
				t.Errorf("problems %q: none starts with %q and contains %q", ps, tt.field, tt.contains)
			}
		})
	}
}

func TestDecodeProblemsOfOtherTypes(t *testing.T) {
	base := `"event_id":"evt_2","invoice_id":"inv_2","occurred_at":"2026-11-29T10:00:00Z"`
	tests := []struct {
		name, json, field, contains string
	}{
		{"retry succeeded without attempt_id", `{"type":"payment.retry_succeeded",` + base + `}`, "attempt_id:", "required"},
		{"retry failed without attempt_id", `{"type":"payment.retry_failed",` + base + `}`, "attempt_id:", "required"},
		{"opt-out with bad channel", `{"type":"dunning.opt_out",` + base + `,"channel":"fax"}`, "channel:", `"fax" is not email or sms`},
		{"opt-out with channel none", `{"type":"dunning.opt_out",` + base + `,"channel":"none"}`, "channel:", "not email or sms"},
		{"opt-out without channel", `{"type":"dunning.opt_out",` + base + `}`, "channel:", "required (email or sms)"},
		{"snapshot on a retry event", `{"type":"payment.retry_failed",` + base + `,"attempt_id":"a1","customer":{"name":"Ada"}}`,
			"customer:", "only payment.failed events carry a customer snapshot"},
		{"snapshot on a cancel event", `{"type":"dunning.cancel",` + base + `,"customer":{}}`,
			"customer:", "only payment.failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problems(t, []byte(tt.json))
			if !hasProblem(ps, tt.field, tt.contains) {
				t.Errorf("problems %q: none starts with %q and contains %q", ps, tt.field, tt.contains)
			}
		})
	}
}

func TestDecodeReportsSeveralProblemsAtOnce(t *testing.T) {
	m := paymentFailed()
	delete(m, "event_id")
	m["amount_minor"] = -1
	m["currency"] = "XYZ"
	customer(m)["phone"] = "4155552671"
	customer(m)["time_zone"] = "Nowhere/City"
	ps := problems(t, encode(t, m))
	for _, field := range []string{"event_id:", "amount_minor:", "currency:", "customer.phone:", "customer.time_zone:"} {
		if !hasProblem(ps, field, "") {
			t.Errorf("problems %q lack %s", ps, field)
		}
	}
	if len(ps) != 5 {
		t.Errorf("got %d problems %q, want 5", len(ps), ps)
	}
}

func TestDecodeMalformedInput(t *testing.T) {
	valid := encode(t, paymentFailed())
	tests := []struct {
		name     string
		data     []byte
		contains string
	}{
		{"empty input", nil, "event: empty input"},
		{"only whitespace", []byte("  \n"), "event: empty input"},
		{"trailing object", append(append([]byte{}, valid...), valid...), "event: unexpected data after the JSON object"},
		{"trailing garbage", append(append([]byte{}, valid...), " x"...), "event: unexpected data after the JSON object"},
		{"not JSON", []byte("type=payment.failed"), "event: not valid JSON"},
		{"truncated", valid[:len(valid)-5], "event:"},
		{"array", []byte(`[1]`), "event: must be an object"},
		{"oversized", append(valid, bytes.Repeat([]byte(" "), events.MaxSize)...), "event: larger than 262144 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problems(t, tt.data)
			if !hasProblem(ps, "", tt.contains) {
				t.Errorf("problems %q lack %q", ps, tt.contains)
			}
		})
	}
}

func TestDecodeAcceptsTrailingWhitespaceAndMaxSize(t *testing.T) {
	valid := encode(t, paymentFailed())
	padded := append(append([]byte{}, valid...), bytes.Repeat([]byte("\n"), events.MaxSize-len(valid))...)
	if len(padded) != events.MaxSize {
		t.Fatalf("test data is %d bytes", len(padded))
	}
	ev, err := events.Decode(padded)
	if err != nil {
		t.Fatalf("an event of exactly MaxSize bytes: %v", err)
	}
	if !bytes.Equal(ev.Raw, valid) {
		t.Errorf("Raw keeps the padding: %d bytes", len(ev.Raw))
	}
}

func TestDecodeSnapshotIsOptional(t *testing.T) {
	m := paymentFailed()
	delete(m, "customer")
	ev, err := events.Decode(encode(t, m))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if ev.Customer != nil {
		t.Errorf("Customer = %+v, want nil", ev.Customer)
	}
	// A partial snapshot keeps the consent it does not mention unknown (nil).
	m["customer"] = map[string]any{"plan": "basic"}
	ev, err = events.Decode(encode(t, m))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if ev.Customer == nil || ev.Customer.Plan != "basic" || ev.Customer.EmailConsent != nil || ev.Customer.SMSConsent != nil {
		t.Errorf("Customer = %+v", ev.Customer)
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"+14155552671", "+14155552671", ""},
		{"+1 (415) 555-2671", "+14155552671", ""},
		{" +44 20 7946 0958", "+442079460958", ""},
		{"+49 30 901820", "+4930901820", ""},
		{"0044 20 7946 0958", "", "starting with +"},
		{"(415) 555-2671", "", "starting with +"},
		{"+1 555", "", "not a valid phone number"},
		{"+abc", "", "not a valid phone number"},
	}
	for _, tt := range tests {
		got, err := events.NormalizePhone(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("NormalizePhone(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("NormalizePhone(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
			t.Errorf("NormalizePhone(%q) error %q repeats the number", tt.in, err)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id    string
		valid bool
	}{
		{"evt_1", true},
		{"in_1MtHbELkdIwHu7ixl4OzzPMv", true},
		{"urn:billing:inv-42.v2", true},
		{"9", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"_leading", false},
		{"ada@example.com", false},
		{"evt 1", false},
		{"inv/1", false},
		{"évt", false},
	}
	for _, tt := range tests {
		if got := events.ValidID(tt.id); got != tt.valid {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.valid)
		}
	}
}

// The payment context for failure-spike detection: an 8-digit BIN keeps its first 6
// digits, the country is upper-cased, and a bad value gets a message that never repeats a
// card number sent by mistake.
func TestDecodePaymentContext(t *testing.T) {
	m := paymentFailed()
	m["gateway"], m["card_bin"], m["issuer_country"] = " adyen-eu ", "41111111", "de"
	ev, err := events.Decode(encode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Gateway != "adyen-eu" || ev.CardBIN != "411111" || ev.IssuerCountry != "DE" {
		t.Fatalf("decoded gateway %q, BIN %q, country %q", ev.Gateway, ev.CardBIN, ev.IssuerCountry)
	}
	m["card_bin"], m["issuer_country"], m["gateway"] = "4111111111111111", "Germany", "ad yen"
	_, err = events.Decode(encode(t, m))
	var ve *events.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("bad payment context accepted: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"card_bin: must be the first 6 to 8 digits", `issuer_country: "Germany" is not a 2-letter ISO 3166-1`, "gateway: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "4111111111111111") {
		t.Errorf("the error repeats the card number: %q", msg)
	}
}
