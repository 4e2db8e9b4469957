// Package events decodes and validates the events the billing service sends (JSON, one
// object per event, field "type" naming the kind). Every problem is reported with the path
// of the field at fault; nothing is accepted half-valid.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/money"
)

// Additional event types accepted for support and customer actions.
const (
	EventPause  = "dunning.pause"
	EventResume = "dunning.resume"
	EventOptOut = "dunning.opt_out"
)

// Types lists every accepted event type.
var Types = []string{recoup.EventPaymentFailed, recoup.EventRetrySucceeded, recoup.EventRetryFailed,
	recoup.EventRecovered, recoup.EventCancel, EventPause, EventResume, EventOptOut}

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
	Reason      string
	Channel     recoup.Channel
	Customer    *recoup.CustomerSnapshot
	Raw         []byte // the event as received (compacted JSON)
}

// wire is the JSON shape; pointers tell a missing field from a zero one.
type wire struct {
	Type        *string                  `json:"type"`
	EventID     *string                  `json:"event_id"`
	InvoiceID   *string                  `json:"invoice_id"`
	CustomerID  *string                  `json:"customer_id"`
	OccurredAt  *string                  `json:"occurred_at"`
	AttemptID   *string                  `json:"attempt_id"`
	AmountMinor *int64                   `json:"amount_minor"`
	Currency    *string                  `json:"currency"`
	FailureCode *string                  `json:"failure_code"`
	Reason      *string                  `json:"reason"`
	Channel     *string                  `json:"channel"`
	Customer    *recoup.CustomerSnapshot `json:"customer"`
}

// ValidationError lists every problem of an event, each as "field: message".
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid event: " + strings.Join(e.Problems, "; ")
}

// idRe is the alphabet of ids that end up in workflow IDs and search attributes: no
// spaces, no '@' (so no email address can become an ID).
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidID reports whether s is usable as an event, invoice, customer or attempt id: 1-128
// letters, digits, '.', '_', ':' or '-', starting with a letter or digit.
func ValidID(s string) bool { return idRe.MatchString(s) }

// Decode parses and validates one event.
func Decode(data []byte) (Event, error) {
	if len(data) > MaxSize {
		return Event{}, &ValidationError{Problems: []string{fmt.Sprintf("event: larger than %d bytes", MaxSize)}}
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, &ValidationError{Problems: []string{jsonProblem(err)}}
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return Event{}, &ValidationError{Problems: []string{"event: unexpected data after the JSON object"}}
	}
	var p []string
	bad := func(field, format string, a ...any) { p = append(p, field+": "+fmt.Sprintf(format, a...)) }
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return strings.TrimSpace(*v)
	}
	e := Event{Type: str(w.Type), EventID: str(w.EventID), InvoiceID: str(w.InvoiceID), CustomerID: str(w.CustomerID),
		AttemptID: str(w.AttemptID), Currency: strings.ToUpper(str(w.Currency)), FailureCode: str(w.FailureCode),
		Reason: str(w.Reason), Channel: recoup.Channel(str(w.Channel)), Customer: w.Customer}
	known := false
	for _, t := range Types {
		known = known || t == e.Type
	}
	if e.Type == "" {
		bad("type", "required (one of %s)", strings.Join(Types, ", "))
	} else if !known {
		bad("type", "%q is not one of %s", e.Type, strings.Join(Types, ", "))
	}
	id := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			bad(field, "required")
		case v != "" && !idRe.MatchString(v):
			bad(field, "%q must be 1-128 letters, digits, '.', '_', ':' or '-'", v)
		}
	}
	id("event_id", e.EventID, true)
	id("invoice_id", e.InvoiceID, true)
	if w.OccurredAt == nil {
		bad("occurred_at", "required (RFC 3339 time, e.g. 2026-11-29T10:00:00Z)")
	} else if t, err := time.Parse(time.RFC3339Nano, *w.OccurredAt); err != nil {
		bad("occurred_at", "%q is not an RFC 3339 time", *w.OccurredAt)
	} else {
		e.OccurredAt = t.UTC()
	}
	switch e.Type {
	case recoup.EventPaymentFailed:
		id("customer_id", e.CustomerID, true)
		id("attempt_id", e.AttemptID, false)
		switch {
		case w.AmountMinor == nil:
			bad("amount_minor", "required (integer amount in the currency's minor unit)")
		case *w.AmountMinor <= 0:
			bad("amount_minor", "must be positive, got %d", *w.AmountMinor)
		default:
			e.AmountMinor = *w.AmountMinor
		}
		if e.Currency == "" {
			bad("currency", "required (ISO 4217 code, e.g. USD)")
		} else if c, err := money.ParseCurrency(e.Currency); err != nil {
			bad("currency", "%v", err)
		} else {
			e.Currency = c
		}
		if e.Customer != nil {
			p = append(p, checkSnapshot(e.Customer)...)
		}
	case recoup.EventRetrySucceeded, recoup.EventRetryFailed:
		id("attempt_id", e.AttemptID, true)
	case EventOptOut:
		if !e.Channel.Valid() {
			bad("channel", "%q is not email or sms", e.Channel)
		}
	}
	if e.Type != recoup.EventPaymentFailed && e.Customer != nil {
		bad("customer", "only payment.failed events carry a customer snapshot")
	}
	if len(p) > 0 {
		return Event{}, &ValidationError{Problems: p}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return Event{}, &ValidationError{Problems: []string{jsonProblem(err)}}
	}
	e.Raw = buf.Bytes()
	return e, nil
}

func checkSnapshot(c *recoup.CustomerSnapshot) []string {
	var p []string
	bad := func(field, format string, a ...any) { p = append(p, "customer."+field+": "+fmt.Sprintf(format, a...)) }
	c.Email = strings.TrimSpace(c.Email)
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			bad("email", "not a valid email address")
		}
	}
	if c.Phone != "" {
		e164, err := NormalizePhone(c.Phone)
		if err != nil {
			bad("phone", "%v", err)
		} else {
			c.Phone = e164
		}
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
			bad("time_zone", "%q is not an IANA time zone like Europe/Berlin", c.TimeZone)
		}
	}
	if c.Locale != "" {
		if _, err := language.Parse(c.Locale); err != nil {
			bad("locale", "%q is not a BCP 47 language tag like en-US", c.Locale)
		}
	}
	if len(c.Name) > 200 {
		bad("name", "longer than 200 characters")
	}
	if len(c.Plan) > 64 {
		bad("plan", "longer than 64 characters")
	}
	return p
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
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "event"
		}
		return fmt.Sprintf("%s: must be %s, got JSON %s", field, jsonType(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("event: not valid JSON at byte %d: %v", se.Offset, err)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return strings.Trim(f, `"`) + ": unknown field"
	}
	if errors.Is(err, io.EOF) {
		return "event: empty input, expected a JSON object"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "event: not valid JSON: the input ends in the middle of the object"
	}
	return "event: " + msg
}

func jsonType(kind string) string {
	switch kind {
	case "int64", "int", "int32":
		return "an integer"
	case "ptr", "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct":
		return "an object"
	}
	return kind
}
