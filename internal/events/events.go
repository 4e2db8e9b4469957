// Package events decodes and validates the events the billing service sends against their
// published JSON Schemas (schemas/v1/<type>.json), reporting every problem with the path
// of the field at fault; nothing is accepted half-valid. The three stages: docs/PACKAGES.md.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
)

// Types lists every accepted event type (recoup.EventTypes). Each has a schema,
// schemas/v1/<type>.json.
var Types = recoup.EventTypes

// MaxSize is the largest event accepted, in bytes.
const MaxSize = 256 << 10

// Event is a decoded, validated event.
type Event struct {
	Type        string
	EventID     string
	InvoiceID   string
	CustomerID  string
	OccurredAt  time.Time
	AttemptID   string
	AmountMinor int64
	Currency    string
	FailureCode string
	AdviceCode  string // a network advice code (Mastercard MAC "03"), payment.failed / payment.retry_failed
	// Payment context of a payment.failed or payment.succeeded, for failure-spike
	// detection (no PII).
	Gateway       string
	CardBIN       string // first 6 digits only
	IssuerCountry string // ISO 3166-1 alpha-2, upper case
	Reason        string
	Channel       recoup.Channel
	Customer      *recoup.CustomerSnapshot
	// RetryRequested: a payment_method.updated asking Recoup to advise a retry now.
	RetryRequested bool
	Raw            []byte // the event as received (compacted JSON)
}

// ValidationError lists every problem of an event, each as "field: message".
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid event: " + strings.Join(e.Problems, "; ")
}

// idPattern is the alphabet of ids that end up in workflow IDs and search attributes: no
// spaces, no '@' (so no email address can become an ID). The schemas use the same pattern.
const idPattern = `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`

var idRe = regexp.MustCompile(idPattern)

// ValidID reports whether s is usable as an event, invoice, customer or attempt id: 1-128
// letters, digits, '.', '_', ':' or '-', starting with a letter or digit.
func ValidID(s string) bool { return idRe.MatchString(s) }

// Decode parses and validates one event.
func Decode(data []byte) (Event, error) {
	fail := func(problems ...string) (Event, error) {
		return Event{}, &ValidationError{Problems: problems}
	}
	if len(data) > MaxSize {
		return fail(fmt.Sprintf("event: larger than %d bytes", MaxSize))
	}
	if !utf8.Valid(data) {
		return fail("event: not valid UTF-8 (JSON text must be UTF-8)")
	}
	doc, problem := parseObject(data)
	if problem != "" {
		return fail(problem)
	}
	if problem := escapeProblem(data); problem != "" {
		return fail(problem)
	}
	typ, problem := readType(doc)
	if problem != "" {
		return fail(problem)
	}
	normalize(doc)
	if problem := numberProblem(doc, nil); problem != "" {
		return fail(problem)
	}
	ps := newProblemSet(typ)
	if err := schemas[typ].Validate(doc); err != nil {
		ps.addSchemaError(err, doc)
	}
	e := check(typ, doc, ps)
	if !ps.empty() {
		return fail(ps.list()...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return fail(jsonProblem(err))
	}
	e.Raw = buf.Bytes()
	return e, nil
}

// parseObject reads data as exactly one JSON object, numbers kept as json.Number.
func parseObject(data []byte) (map[string]any, string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonProblem(err)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return nil, "event: unexpected data after the JSON object"
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, "event: must be an object, got JSON " + jsonKind(v)
	}
	return doc, ""
}

// escapeProblem refuses the two escapes JSON allows but no event needs and PostgreSQL's
// jsonb (the event log) refuses: \u0000, and a UTF-16 surrogate escape that is not half of
// a pair. data is known to be valid JSON.
func escapeProblem(data []byte) string {
	const msg = `event: strings must not contain \u0000 or an unpaired UTF-16 surrogate escape`
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			i++ // the escaped character
			if data[i] != 'u' {
				continue
			}
			r := hex4(data[i+1 : i+5])
			i += 4
			switch {
			case r == 0:
				return msg
			case r >= 0xDC00 && r <= 0xDFFF:
				return msg
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return msg
				}
				if lo := hex4(data[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
					return msg
				}
				i += 6
			}
		}
	}
	return ""
}

func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
}

// readType returns the event's type, or the one problem that stops validation: without a
// known type there is no schema to validate against.
func readType(doc map[string]any) (string, string) {
	list := strings.Join(Types, ", ")
	v := doc["type"]
	if v == nil {
		return "", "type: required (one of " + list + ")"
	}
	s, ok := v.(string)
	if !ok {
		return "", "type: must be a string, got JSON " + jsonKind(v)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "type: required (one of " + list + ")"
	}
	if schemas[s] == nil {
		return "", fmt.Sprintf("type: %s is not one of %s", quote(s), list)
	}
	return s, ""
}

// The v1 envelope: every field name any v1 event type defines, and those of the customer
// snapshot. The leniencies of normalize apply to these names only.
var (
	envelopeFields = []string{"type", "event_id", "invoice_id", "occurred_at", "customer_id", "attempt_id",
		"amount_minor", "currency", "failure_code", "advice_code", "gateway", "card_bin", "issuer_country", "reason", "channel",
		"customer", "retry_requested"}
	snapshotFields = []string{"name", "email", "phone", "locale", "time_zone", "plan", "email_consent", "sms_consent"}
	// trimmedFields ignore surrounding whitespace.
	trimmedFields = map[string]bool{"type": true, "event_id": true, "invoice_id": true, "customer_id": true,
		"attempt_id": true, "currency": true, "failure_code": true, "advice_code": true, "gateway": true, "card_bin": true,
		"issuer_country": true, "reason": true, "channel": true}
)

// normalize applies the leniencies v1 producers have always had, so that the schema sees
// the canonical form: a null, and a string that is empty (after trimming, for the fields
// that are trimmed), count as an absent field; ids, codes, the type and the email address
// may carry surrounding whitespace; a phone number may be written with the usual
// punctuation (+1 (415) 555-2671) and is reduced to E.164. Raw keeps what was sent.
func normalize(doc map[string]any) {
	absentIfEmpty(doc, envelopeFields, trimmedFields)
	c, ok := doc["customer"].(map[string]any)
	if !ok {
		return
	}
	absentIfEmpty(c, snapshotFields, map[string]bool{"email": true})
	if s, ok := c["phone"].(string); ok {
		if e164, err := NormalizePhone(s); err == nil {
			c["phone"] = e164
		}
	}
}

func absentIfEmpty(obj map[string]any, fields []string, trim map[string]bool) {
	for _, f := range fields {
		switch v := obj[f].(type) {
		case nil:
			delete(obj, f)
		case string:
			if trim[f] {
				v = strings.TrimSpace(v)
				obj[f] = v
			}
			if v == "" {
				delete(obj, f)
			}
		}
	}
}

// maxNumberDigits bounds the length of a number's digits; its exponent must also be below
// 1000. Then no number costs the validator's exact (math/big) arithmetic more than a trifle,
// and none makes it fail: big.Rat refuses exponents beyond about 10^7.
const maxNumberDigits = 1000

// numberProblem reports the first number under v that is absurdly long or large.
func numberProblem(v any, loc []string) string {
	switch v := v.(type) {
	case json.Number:
		mant, exp, _ := strings.Cut(strings.ToLower(string(v)), "e")
		if len(mant) > maxNumberDigits || len(strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")) > 3 {
			return pathOf(loc) + ": number out of range"
		}
	case map[string]any:
		for k, x := range v {
			if p := numberProblem(x, append(loc, k)); p != "" {
				return p
			}
		}
	case []any:
		for i, x := range v {
			if p := numberProblem(x, append(loc, strconv.Itoa(i))); p != "" {
				return p
			}
		}
	}
	return ""
}

// check runs the checks a schema cannot express on the fields the schema accepted, and
// builds the event from the normalized document.
func check(typ string, doc map[string]any, ps *problemSet) Event {
	str := func(f string) string { s, _ := doc[f].(string); return s }
	e := Event{Type: typ, EventID: str("event_id"), InvoiceID: str("invoice_id"), CustomerID: str("customer_id"),
		AttemptID: str("attempt_id"), Currency: strings.ToUpper(str("currency")), FailureCode: str("failure_code"),
		AdviceCode: str("advice_code"),
		Reason:     str("reason"), Channel: recoup.Channel(str("channel")), Gateway: str("gateway"),
		CardBIN: str("card_bin"), IssuerCountry: strings.ToUpper(str("issuer_country"))}
	e.RetryRequested, _ = doc["retry_requested"].(bool)
	if len(e.CardBIN) > 6 {
		e.CardBIN = e.CardBIN[:6] // only the first 6 digits are kept
	}
	if s, ok := doc["occurred_at"].(string); ok && ps.fine("occurred_at") {
		if t, err := time.Parse(time.RFC3339Nano, s); err != nil {
			ps.add("occurred_at", prioSemantic, quote(s)+" is not an RFC 3339 time")
		} else {
			e.OccurredAt = t.UTC()
		}
	}
	if n, ok := doc["amount_minor"].(json.Number); ok && ps.fine("amount_minor") {
		if v, err := plainInt(n); err != nil {
			ps.add("amount_minor", prioSemantic, "must be an integer written without a fraction or exponent, got "+numberText(n))
		} else if typ == recoup.EventPaymentFailed {
			e.AmountMinor = v
		}
	}
	if typ != recoup.EventPaymentFailed {
		return e
	}
	if e.Currency != "" && ps.fine("currency") {
		if c, err := money.ParseCurrency(e.Currency); err != nil {
			ps.add("currency", prioSemantic, err.Error())
		} else {
			e.Currency = c
		}
	}
	if c, ok := doc["customer"].(map[string]any); ok && ps.fine("customer") {
		e.Customer = checkSnapshot(c, ps)
	}
	return e
}

var plainIntRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func plainInt(n json.Number) (int64, error) {
	if !plainIntRe.MatchString(string(n)) {
		return 0, errors.New("not a plain integer")
	}
	return strconv.ParseInt(string(n), 10, 64)
}

// checkSnapshot checks the customer snapshot (already normalized and schema-checked) and
// returns it.
func checkSnapshot(obj map[string]any, ps *problemSet) *recoup.CustomerSnapshot {
	str := func(f string) string { s, _ := obj[f].(string); return s }
	boolean := func(f string) *bool {
		if b, ok := obj[f].(bool); ok {
			return &b
		}
		return nil
	}
	c := &recoup.CustomerSnapshot{Name: str("name"), Email: str("email"), Phone: str("phone"), Locale: str("locale"),
		TimeZone: str("time_zone"), Plan: str("plan"), EmailConsent: boolean("email_consent"), SMSConsent: boolean("sms_consent")}
	bad := func(field, msg string) { ps.add("customer."+field, prioSemantic, msg) }
	// The schema checks the same (TestSnapshotLimitsAgreeWithSchema); this keeps Decode
	// and the customer import to one rule.
	for _, f := range []string{"name", "email", "locale", "time_zone", "plan"} {
		if s := str(f); s != "" && ps.fine("customer."+f) {
			if err := CheckCustomerText(f, s); err != nil {
				_, msg, _ := strings.Cut(err.Error(), ": ")
				bad(f, msg)
			}
		}
	}
	if c.Email != "" && ps.fine("customer.email") {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			bad("email", "not a valid email address")
		}
	}
	if c.Phone != "" && ps.fine("customer.phone") {
		if e164, err := NormalizePhone(c.Phone); err != nil {
			bad("phone", err.Error())
		} else {
			c.Phone = e164
		}
	}
	if c.TimeZone != "" && ps.fine("customer.time_zone") {
		if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
			bad("time_zone", quote(c.TimeZone)+" is not an IANA time zone like Europe/Berlin")
		}
	}
	if c.Locale != "" && ps.fine("customer.locale") {
		if _, err := language.Parse(c.Locale); err != nil {
			bad("locale", quote(c.Locale)+" is not a BCP 47 language tag like en-US")
		}
	}
	return c
}

// NormalizePhone returns a phone number in E.164 form; it must be given with its country
// code (+…). The error never repeats the number.
func NormalizePhone(s string) (string, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "+") {
		return "", errors.New("must be in international E.164 form, starting with + and the country code")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", errors.New("not a valid phone number")
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("event: not valid JSON at byte %d: %v", se.Offset, err)
	}
	if errors.Is(err, io.EOF) {
		return "event: empty input, expected a JSON object"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "event: not valid JSON: the input ends in the middle of the object"
	}
	return "event: " + err.Error()
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// quote quotes a value for a message, cut to a readable length.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return strconv.Quote(s)
}
