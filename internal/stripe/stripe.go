// Package stripe accepts Stripe's own webhooks: it verifies the Stripe-Signature header
// with stripe-go (several endpoint secrets, so one can be rolled) and translates the events
// Recoup cares about into native events that have passed events.Decode. The mapping and
// its known gaps: docs/PACKAGES.md.
package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v83"
	"github.com/stripe/stripe-go/v83/webhook"
	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/model/money"
)

// DefaultTolerance is the signature timestamp tolerance used when New is given 0 (Stripe's
// default, five minutes).
const DefaultTolerance = webhook.DefaultTolerance

// CancelReason is the reason of the dunning.cancel events made from
// customer.subscription.deleted.
const CancelReason = "stripe subscription deleted"

// Stripe event types that are translated.
const (
	TypeInvoicePaymentFailed    = "invoice.payment_failed"
	TypeInvoicePaid             = "invoice.paid"
	TypeInvoicePaymentSucceeded = "invoice.payment_succeeded"
	TypeSubscriptionDeleted     = "customer.subscription.deleted"
)

var (
	// ErrSignature means the Stripe-Signature header is missing or malformed, no signature
	// matches any secret, or its timestamp is outside the tolerance (answer 401).
	ErrSignature = errors.New("stripehook: invalid Stripe signature")
	// ErrMalformed means the payload is signed but is not a Stripe event that can be read
	// or translated into a valid native event (answer 400).
	ErrMalformed = errors.New("stripehook: malformed Stripe event")
)

// Verifier checks Stripe-Signature headers against one or more endpoint secrets (rotation:
// any may match) and translates verified events. It is safe for concurrent use.
type Verifier struct {
	secrets   []string
	tolerance time.Duration
}

// New returns a Verifier for the endpoint secrets ("whsec_..."). It fails when there is no
// secret, when one is empty, or when tolerance is negative; tolerance 0 means
// DefaultTolerance.
func New(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("stripehook: no webhook signing secret given")
	}
	v := &Verifier{tolerance: tolerance}
	for i, s := range secrets {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("stripehook: webhook signing secret %d of %d is empty", i+1, len(secrets))
		}
		v.secrets = append(v.secrets, s)
	}
	if tolerance < 0 {
		return nil, fmt.Errorf("stripehook: tolerance must not be negative, got %s", tolerance)
	}
	if tolerance == 0 {
		v.tolerance = DefaultTolerance
	}
	return v, nil
}

// Translate verifies payload (the raw request body, exactly as received) against sigHeader
// (the Stripe-Signature header) and maps the Stripe event to a native Recoup event.
// stripeType is the Stripe event type once the signature is verified. For event types
// Recoup does not handle it returns ignored=true and no native event. Errors match
// ErrSignature or ErrMalformed with errors.Is; their messages never contain a secret.
func (v *Verifier) Translate(payload []byte, sigHeader string) (native []byte, stripeType string, ignored bool, err error) {
	ev, err := v.verify(payload, sigHeader)
	if err != nil {
		return nil, "", false, err
	}
	stripeType = string(ev.Type)
	if !events.ValidID(ev.ID) {
		return nil, stripeType, false, fmt.Errorf("%w: event id %q is missing or not a usable id", ErrMalformed, ev.ID)
	}
	if ev.Created <= 0 {
		return nil, stripeType, false, fmt.Errorf("%w: event %s has no created time", ErrMalformed, ev.ID)
	}
	var out *nativeEvent
	switch stripeType {
	case TypeInvoicePaymentFailed:
		out, err = paymentFailed(ev)
	case TypeInvoicePaid, TypeInvoicePaymentSucceeded:
		out, err = recovered(ev)
	case TypeSubscriptionDeleted:
		out, err = subscriptionDeleted(ev)
	}
	if err != nil {
		return nil, stripeType, false, fmt.Errorf("%w: %s event %s: %v", ErrMalformed, stripeType, ev.ID, err)
	}
	if out == nil {
		return nil, stripeType, true, nil
	}
	native, err = json.Marshal(out)
	if err != nil {
		return nil, stripeType, false, fmt.Errorf("%w: %s event %s: encoding the native event: %v", ErrMalformed, stripeType, ev.ID, err)
	}
	if _, err := events.Decode(native); err != nil {
		return nil, stripeType, false, fmt.Errorf("%w: %s event %s does not make a valid %s event: %v", ErrMalformed, stripeType, ev.ID, out.Type, err)
	}
	return native, stripeType, false, nil
}

// verify checks the signature with every secret in turn and parses the event.
func (v *Verifier) verify(payload []byte, sigHeader string) (stripe.Event, error) {
	if err := v.checkHeader(sigHeader, time.Now()); err != nil {
		return stripe.Event{}, err
	}
	opts := webhook.ConstructEventOptions{Tolerance: v.tolerance, IgnoreAPIVersionMismatch: true}
	for _, secret := range v.secrets {
		ev, err := webhook.ConstructEventWithOptions(payload, sigHeader, secret, opts)
		switch {
		case err == nil:
			return ev, nil
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // perhaps signed with another of the secrets
		case errors.Is(err, webhook.ErrNotSigned):
			return stripe.Event{}, fmt.Errorf("%w: missing Stripe-Signature header: %w", ErrSignature, err)
		case errors.Is(err, webhook.ErrInvalidHeader):
			return stripe.Event{}, fmt.Errorf("%w: malformed Stripe-Signature header: %w", ErrSignature, err)
		case errors.Is(err, webhook.ErrTooOld):
			return stripe.Event{}, fmt.Errorf("%w: signature timestamp is older than the tolerance of %s: %w", ErrSignature, v.tolerance, err)
		default:
			// The signature matched: the body itself is unreadable.
			return stripe.Event{}, malformedBody(payload, err)
		}
	}
	return stripe.Event{}, fmt.Errorf("%w: no signature in the Stripe-Signature header matches any of the %d configured secret(s): %w",
		ErrSignature, len(v.secrets), webhook.ErrNoValidSignature)
}

// checkHeader rejects what stripe-go lets through or reports vaguely: a header without a
// timestamp or without a v1 signature, and a timestamp further in the future than the
// tolerance (stripe-go only bounds the past).
func (v *Verifier) checkHeader(h string, now time.Time) error {
	if strings.TrimSpace(h) == "" {
		return fmt.Errorf("%w: missing Stripe-Signature header: %w", ErrSignature, webhook.ErrNotSigned)
	}
	var ts string
	v1 := false
	for _, pair := range strings.Split(h, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(val, "=") {
			return fmt.Errorf("%w: malformed Stripe-Signature header (want t=<unix time>,v1=<hex>): %w", ErrSignature, webhook.ErrInvalidHeader)
		}
		switch k {
		case "t":
			ts = val
		case "v1":
			v1 = true
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: Stripe-Signature header has no timestamp (t=): %w", ErrSignature, webhook.ErrInvalidHeader)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: Stripe-Signature header timestamp is not a Unix time: %w", ErrSignature, webhook.ErrInvalidHeader)
	}
	if !v1 {
		return fmt.Errorf("%w: Stripe-Signature header has no v1 signature: %w", ErrSignature, webhook.ErrNoValidSignature)
	}
	if ahead := time.Unix(sec, 0).Sub(now); ahead > v.tolerance {
		return fmt.Errorf("%w: signature timestamp is %s in the future, beyond the tolerance of %s",
			ErrSignature, ahead.Truncate(time.Second), v.tolerance)
	}
	return nil
}

func malformedBody(payload []byte, err error) error {
	var env struct {
		Object string `json:"object"`
	}
	if jerr := json.Unmarshal(payload, &env); jerr != nil {
		return fmt.Errorf("%w: body is not a JSON object: %v", ErrMalformed, jerr)
	}
	if env.Object != "event" {
		return fmt.Errorf("%w: body is not a Stripe event (\"object\" is %q, want \"event\"; thin event notifications are not supported)", ErrMalformed, env.Object)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// nativeEvent has exactly the field names of events' wire format; optional fields are
// omitted when empty.
type nativeEvent struct {
	Type        string                   `json:"type"`
	EventID     string                   `json:"event_id"`
	InvoiceID   string                   `json:"invoice_id"`
	CustomerID  string                   `json:"customer_id,omitempty"`
	OccurredAt  string                   `json:"occurred_at"`
	AttemptID   string                   `json:"attempt_id,omitempty"`
	AmountMinor int64                    `json:"amount_minor,omitempty"`
	Currency    string                   `json:"currency,omitempty"`
	FailureCode string                   `json:"failure_code,omitempty"`
	Gateway     string                   `json:"gateway,omitempty"`
	Country     string                   `json:"issuer_country,omitempty"`
	Reason      string                   `json:"reason,omitempty"`
	Customer    *recoup.CustomerSnapshot `json:"customer,omitempty"`
}

func newNative(typ string, ev stripe.Event, invoiceID string) *nativeEvent {
	return &nativeEvent{Type: typ, EventID: ev.ID, InvoiceID: invoiceID,
		OccurredAt: time.Unix(ev.Created, 0).UTC().Format(time.RFC3339)}
}

// invoice is the part of a Stripe invoice that Recoup reads.
type invoice struct {
	Object          string          `json:"object"`
	ID              string          `json:"id"`
	Customer        json.RawMessage `json:"customer"` // id or expanded customer
	Currency        string          `json:"currency"`
	AmountDue       int64           `json:"amount_due"`
	AmountRemaining int64           `json:"amount_remaining"`
	AttemptCount    int64           `json:"attempt_count"`
	CustomerName    string          `json:"customer_name"`
	CustomerEmail   string          `json:"customer_email"`
	CustomerPhone   string          `json:"customer_phone"`
	Charge          json.RawMessage `json:"charge"`         // id or expanded charge (before 2025-03-31.basil)
	PaymentIntent   json.RawMessage `json:"payment_intent"` // id or expanded payment intent (before basil)
	Payments        *struct {
		Data []struct {
			Payment struct {
				Charge        json.RawMessage `json:"charge"`
				PaymentIntent json.RawMessage `json:"payment_intent"`
			} `json:"payment"`
		} `json:"data"`
	} `json:"payments"` // basil and later, when included
	LastFinalizationError *struct {
		Code string `json:"code"`
	} `json:"last_finalization_error"`
}

type customer struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Email            string   `json:"email"`
	Phone            string   `json:"phone"`
	PreferredLocales []string `json:"preferred_locales"`
}

type charge struct {
	FailureCode          string `json:"failure_code"`
	PaymentMethodDetails *struct {
		Card *struct {
			Country string `json:"country"` // the card's (issuer's) country
		} `json:"card"`
	} `json:"payment_method_details"`
}

type paymentIntent struct {
	LastPaymentError *struct {
		Code        string `json:"code"`
		DeclineCode string `json:"decline_code"`
	} `json:"last_payment_error"`
}

func readInvoice(ev stripe.Event) (invoice, error) {
	var in invoice
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		return in, errors.New("data.object is missing")
	}
	if err := json.Unmarshal(ev.Data.Raw, &in); err != nil {
		return in, fmt.Errorf("data.object is not a readable invoice: %v", err)
	}
	if in.Object != "invoice" {
		return in, fmt.Errorf("data.object is a %q, want an invoice", in.Object)
	}
	if in.ID = strings.TrimSpace(in.ID); !events.ValidID(in.ID) {
		return in, fmt.Errorf("data.object.id %q is missing or not a usable invoice id", in.ID)
	}
	return in, nil
}

func recovered(ev stripe.Event) (*nativeEvent, error) {
	in, err := readInvoice(ev)
	if err != nil {
		return nil, err
	}
	// payment.succeeded: it settles the invoice's run like payment.recovered, and it is
	// payment volume for failure-spike detection, recorded without parking when the invoice
	// was never dunned (most paid invoices).
	n := newNative(recoup.EventPaymentSucceeded, ev, in.ID)
	n.Gateway, n.Country = "stripe", cardCountry(in)
	return n, nil
}

func paymentFailed(ev stripe.Event) (*nativeEvent, error) {
	in, err := readInvoice(ev)
	if err != nil {
		return nil, err
	}
	n := newNative(recoup.EventPaymentFailed, ev, in.ID)
	var cust customer
	custID, custObj, err := ref(in.Customer)
	if err != nil {
		return nil, fmt.Errorf("data.object.customer: %v", err)
	}
	if custObj != nil {
		if err := json.Unmarshal(custObj, &cust); err != nil {
			return nil, fmt.Errorf("data.object.customer is not a readable customer: %v", err)
		}
	}
	if custID == "" {
		return nil, errors.New("data.object.customer is missing: the invoice has no customer")
	}
	n.CustomerID = custID

	n.Currency = strings.ToUpper(strings.TrimSpace(in.Currency))
	if n.Currency == "" {
		return nil, errors.New("data.object.currency is missing")
	}
	amount := in.AmountDue
	if amount == 0 {
		amount = in.AmountRemaining
	}
	if amount <= 0 {
		return nil, fmt.Errorf("nothing is owed: data.object.amount_due is %d and amount_remaining is %d", in.AmountDue, in.AmountRemaining)
	}
	if n.AmountMinor, err = recoupMinor(amount, n.Currency); err != nil {
		return nil, err
	}
	if in.AttemptCount > 0 {
		n.AttemptID = "attempt-" + strconv.FormatInt(in.AttemptCount, 10)
	}
	if n.FailureCode, err = failureCode(in); err != nil {
		return nil, err
	}
	n.Gateway, n.Country = "stripe", cardCountry(in) // for failure-spike detection
	n.Customer = snapshot(in, cust)
	return n, nil
}

func subscriptionDeleted(ev stripe.Event) (*nativeEvent, error) {
	var sub struct {
		Object        string          `json:"object"`
		ID            string          `json:"id"`
		LatestInvoice json.RawMessage `json:"latest_invoice"` // id or expanded invoice
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		return nil, errors.New("data.object is missing")
	}
	if err := json.Unmarshal(ev.Data.Raw, &sub); err != nil {
		return nil, fmt.Errorf("data.object is not a readable subscription: %v", err)
	}
	if sub.Object != "subscription" {
		return nil, fmt.Errorf("data.object is a %q, want a subscription", sub.Object)
	}
	invoiceID, _, err := ref(sub.LatestInvoice)
	if err != nil {
		return nil, fmt.Errorf("data.object.latest_invoice: %v", err)
	}
	if invoiceID == "" {
		return nil, nil // no invoice, so no dunning run to cancel
	}
	if !events.ValidID(invoiceID) {
		return nil, fmt.Errorf("data.object.latest_invoice %q is not a usable invoice id", invoiceID)
	}
	n := newNative(recoup.EventCancel, ev, invoiceID)
	n.Reason = CancelReason
	return n, nil
}

// ref reads an expandable field: a string id, an expanded object (returned as obj, with its
// "id"), or null/absent.
func ref(raw json.RawMessage) (id string, obj json.RawMessage, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil, nil
	}
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", nil, err
		}
		return strings.TrimSpace(id), nil, nil
	case '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", nil, err
		}
		return strings.TrimSpace(o.ID), raw, nil
	}
	return "", nil, errors.New("must be an id string or an object")
}

// cardCountry is the issuer country of the failed charge's card, when the payload has an
// expanded charge that says it (an unreadable one was already reported by failureCode).
func cardCountry(in invoice) string {
	charges := []json.RawMessage{in.Charge}
	if in.Payments != nil {
		for _, p := range in.Payments.Data {
			charges = append(charges, p.Payment.Charge)
		}
	}
	for _, raw := range charges {
		var ch charge
		if _, obj, err := ref(raw); err == nil && obj != nil && json.Unmarshal(obj, &ch) == nil {
			if d := ch.PaymentMethodDetails; d != nil && d.Card != nil && len(d.Card.Country) == 2 {
				return strings.ToUpper(d.Card.Country)
			}
		}
	}
	return ""
}

// failureCode picks the most specific decline reason the payload carries: a payment
// intent's last_payment_error.decline_code, a charge's failure_code, the payment intent's
// last_payment_error.code, and last of all the invoice's last_finalization_error.code.
func failureCode(in invoice) (string, error) {
	charges := []json.RawMessage{in.Charge}
	intents := []json.RawMessage{in.PaymentIntent}
	if in.Payments != nil {
		for _, p := range in.Payments.Data {
			charges = append(charges, p.Payment.Charge)
			intents = append(intents, p.Payment.PaymentIntent)
		}
	}
	var declineCode, chargeCode, errorCode string
	for _, raw := range intents {
		_, obj, err := ref(raw)
		if err != nil {
			return "", fmt.Errorf("payment_intent: %v", err)
		}
		var pi paymentIntent
		if obj == nil {
			continue
		}
		if err := json.Unmarshal(obj, &pi); err != nil {
			return "", fmt.Errorf("payment_intent is not a readable payment intent: %v", err)
		}
		if e := pi.LastPaymentError; e != nil {
			declineCode = first(declineCode, e.DeclineCode)
			errorCode = first(errorCode, e.Code)
		}
	}
	for _, raw := range charges {
		_, obj, err := ref(raw)
		if err != nil {
			return "", fmt.Errorf("charge: %v", err)
		}
		var ch charge
		if obj == nil {
			continue
		}
		if err := json.Unmarshal(obj, &ch); err != nil {
			return "", fmt.Errorf("charge is not a readable charge: %v", err)
		}
		chargeCode = first(chargeCode, ch.FailureCode)
	}
	finalization := ""
	if in.LastFinalizationError != nil {
		finalization = in.LastFinalizationError.Code
	}
	return first(declineCode, chargeCode, errorCode, finalization), nil
}

// first returns the first of vs that is not blank, trimmed.
func first(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// maxName is the longest name events.Decode accepts, in bytes.
const maxName = 200

// snapshot builds the customer snapshot from the invoice's customer_* fields (falling back
// to an expanded customer), dropping what Recoup would refuse; nil when nothing is known.
func snapshot(in invoice, c customer) *recoup.CustomerSnapshot {
	s := recoup.CustomerSnapshot{
		Name:  first(in.CustomerName, c.Name),
		Email: first(in.CustomerEmail, c.Email),
	}
	s.Name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s.Name))
	for len(s.Name) > maxName {
		_, size := utf8.DecodeLastRuneInString(s.Name[:maxName+1])
		s.Name = strings.TrimSpace(s.Name[:maxName+1-size])
	}
	if s.Email != "" {
		if a, err := mail.ParseAddress(s.Email); err != nil || a.Address != s.Email || len(s.Email) > events.MaxEmailLen {
			s.Email = ""
		}
	}
	if phone := first(in.CustomerPhone, c.Phone); phone != "" {
		if e164, err := events.NormalizePhone(phone); err == nil {
			s.Phone = e164
		}
	}
	if len(c.PreferredLocales) > 0 {
		if tag, err := language.Parse(strings.TrimSpace(c.PreferredLocales[0])); err == nil && len(tag.String()) <= events.MaxLocaleLen {
			s.Locale = tag.String()
		}
	}
	if s == (recoup.CustomerSnapshot{}) {
		return nil
	}
	return &s
}

// stripeZeroDecimal and stripeThreeDecimal are Stripe's lists of currencies whose API
// amounts are not in hundredths (https://docs.stripe.com/currencies); every other currency,
// ISK included, is two-decimal in Stripe's API.
var (
	stripeZeroDecimal = map[string]bool{"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true,
		"KMF": true, "KRW": true, "MGA": true, "PYG": true, "RWF": true, "UGX": true, "VND": true,
		"VUV": true, "XAF": true, "XOF": true, "XPF": true}
	stripeThreeDecimal = map[string]bool{"BHD": true, "JOD": true, "KWD": true, "OMR": true, "TND": true}
)

// recoupMinor converts a positive Stripe amount to Recoup's minor unit of the currency,
// rounding half up where Recoup's unit is coarser.
func recoupMinor(amount int64, cur string) (int64, error) {
	stripeExp := 2
	switch {
	case stripeZeroDecimal[cur]:
		stripeExp = 0
	case stripeThreeDecimal[cur]:
		stripeExp = 3
	}
	recoupExp := money.Exponent(cur)
	if stripeExp > recoupExp {
		d := int64(1)
		for ; stripeExp > recoupExp; stripeExp-- {
			d *= 10
		}
		amount = amount/d + (amount%d*2)/d // half up, without overflow
	}
	for ; stripeExp < recoupExp; stripeExp++ {
		if amount > math.MaxInt64/10 {
			return 0, fmt.Errorf("the amount owed does not fit in Recoup's unit of %s", cur)
		}
		amount *= 10
	}
	if amount <= 0 {
		return 0, fmt.Errorf("the amount owed is less than one unit of %s", cur)
	}
	return amount, nil
}
