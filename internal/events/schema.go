package events

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
)

// schemaFS holds the published contract: one JSON Schema (draft 2020-12) per event type and
// contract version. A published version never changes incompatibly (docs/events/README.md).
//
//go:embed schemas/v1/*.json
var schemaFS embed.FS

const (
	schemaVersion = "v1"
	schemaBaseURL = "https://recoup.dev/schemas/events/"
)

// schemaPath is where the schema of an event type is embedded; schemaURL is its $id.
func schemaPath(typ string) string { return "schemas/" + schemaVersion + "/" + typ + ".json" }
func schemaURL(typ string) string  { return schemaBaseURL + schemaVersion + "/" + typ + ".json" }

// schemas are the compiled schemas by event type, compiled once from the embedded files.
var schemas = mustCompileSchemas()

func mustCompileSchemas() map[string]*jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat() // date-time and email are assertions here, not annotations
	c.RegisterFormat(&jsonschema.Format{Name: "email", Validate: emailFormat})
	for _, typ := range Types {
		b, err := schemaFS.ReadFile(schemaPath(typ))
		if err != nil {
			panic(fmt.Sprintf("events: no schema for %s: %v", typ, err))
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			panic(fmt.Sprintf("events: %s: %v", schemaPath(typ), err))
		}
		if m, _ := doc.(map[string]any); m == nil || m["$id"] != schemaURL(typ) {
			panic(fmt.Sprintf("events: %s: $id must be %s", schemaPath(typ), schemaURL(typ)))
		}
		if err := c.AddResource(schemaURL(typ), doc); err != nil {
			panic(fmt.Sprintf("events: %s: %v", schemaPath(typ), err))
		}
	}
	out := make(map[string]*jsonschema.Schema, len(Types))
	for _, typ := range Types {
		s, err := c.Compile(schemaURL(typ))
		if err != nil {
			panic(fmt.Sprintf("events: %s: %v", schemaPath(typ), err))
		}
		out[typ] = s
	}
	return out
}

// asciiEmail is the library's own "email" format (RFC 5321, ASCII only).
var asciiEmail = func() *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "urn:recoup:ascii-email"
	if err := c.AddResource(url, map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "format": "email"}); err != nil {
		panic(err)
	}
	return c.MustCompile(url)
}()

// emailFormat is "email" as Decode asserts it: the library's RFC 5321 check, and, as a v1
// leniency, an internationalised address (RFC 6531, e.g. zoë@example.com) that net/mail
// reads as a bare address, as v1 has always accepted.
func emailFormat(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	err := asciiEmail.Validate(s)
	if err == nil || isASCII(s) {
		return err
	}
	if a, perr := mail.ParseAddress(s); perr == nil && a.Address == s {
		return nil
	}
	return err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Priorities of problems: a field is reported once, with its most basic problem.
const (
	prioRequired = iota // missing, or a field no schema of the type defines
	prioType            // wrong JSON type
	prioValue           // not one of the allowed values
	prioShape           // does not match its pattern or format
	prioRange           // too long, too small, too large
	prioOther           // any other schema keyword
	prioSemantic        // what a schema cannot check (ISO 4217, IANA, BCP 47, libphonenumber)
)

// maxProblems caps the problems reported for one event; a generator gone wrong can make
// thousands.
const maxProblems = 25

type problem struct {
	msg  string
	prio int
}

// problemSet collects one problem per field path ("amount_minor", "customer.phone").
type problemSet struct {
	typ    string
	byPath map[string]problem
}

func newProblemSet(typ string) *problemSet {
	return &problemSet{typ: typ, byPath: map[string]problem{}}
}

func (ps *problemSet) add(path string, prio int, msg string) {
	if old, ok := ps.byPath[path]; ok && old.prio <= prio {
		return
	}
	ps.byPath[path] = problem{msg: msg, prio: prio}
}

// fine reports whether the field at path has no problem (yet).
func (ps *problemSet) fine(path string) bool { _, bad := ps.byPath[path]; return !bad }

func (ps *problemSet) empty() bool { return len(ps.byPath) == 0 }

// fieldOrder is the order problems are listed in; other paths follow, alphabetically.
var fieldOrder = []string{"event", "type", "event_id", "invoice_id", "occurred_at", "customer_id", "attempt_id",
	"amount_minor", "currency", "failure_code", "advice_code", "gateway", "card_bin", "issuer_country", "reason", "channel", "customer", "customer.name", "customer.email",
	"customer.phone", "customer.locale", "customer.time_zone", "customer.plan", "customer.email_consent",
	"customer.sms_consent"}

// list returns the problems as "path: message", in field order.
func (ps *problemSet) list() []string {
	paths := make([]string, 0, len(ps.byPath))
	for p := range ps.byPath {
		paths = append(paths, p)
	}
	rank := func(p string) (int, int) {
		top, _, _ := strings.Cut(p, ".")
		r1, r2 := slices.Index(fieldOrder, top), slices.Index(fieldOrder, p)
		if r1 < 0 {
			r1 = len(fieldOrder)
		}
		if r2 < 0 {
			r2 = len(fieldOrder)
		}
		return r1, r2
	}
	slices.SortFunc(paths, func(a, b string) int {
		a1, a2 := rank(a)
		b1, b2 := rank(b)
		if a1 != b1 {
			return a1 - b1
		}
		if a2 != b2 {
			return a2 - b2
		}
		return strings.Compare(a, b)
	})
	out := make([]string, 0, min(len(paths), maxProblems+1))
	for i, p := range paths {
		if i == maxProblems {
			out = append(out, fmt.Sprintf("event: %d more problems not listed", len(paths)-maxProblems))
			break
		}
		out = append(out, p+": "+ps.byPath[p].msg)
	}
	return out
}

// addSchemaError turns the leaves of a validation error tree into field problems.
func (ps *problemSet) addSchemaError(err error, doc map[string]any) {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		ps.add("event", prioOther, err.Error())
		return
	}
	var walk func(*jsonschema.ValidationError)
	walk = func(ve *jsonschema.ValidationError) {
		if len(ve.Causes) == 0 {
			ps.addLeaf(ve, doc)
		}
		for _, c := range ve.Causes {
			walk(c)
		}
	}
	walk(ve)
}

var english = message.NewPrinter(language.English)

// requiredMessages explains what a missing field should hold, where "required" alone would
// leave a producer guessing.
var requiredMessages = map[string]string{
	"occurred_at":  "required (RFC 3339 time, e.g. 2026-11-29T10:00:00Z)",
	"amount_minor": "required (integer amount in the currency's minor unit)",
	"currency":     "required (ISO 4217 code, e.g. USD)",
	"channel":      "required (email or sms)",
}

func (ps *problemSet) addLeaf(ve *jsonschema.ValidationError, doc map[string]any) {
	loc := ve.InstanceLocation
	path := pathOf(loc)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, f := range k.Missing {
			msg := requiredMessages[f]
			if msg == "" {
				msg = "required"
			}
			ps.add(pathOf(append(slices.Clip(loc), f)), prioRequired, msg)
		}
	case *kind.AdditionalProperties:
		for _, f := range k.Properties {
			p := pathOf(append(slices.Clip(loc), f))
			msg := "unknown field"
			if p == "customer" && ps.typ != recoup.EventPaymentFailed {
				msg = "only payment.failed events carry a customer snapshot"
			}
			ps.add(p, prioRequired, msg)
		}
	case *kind.Type:
		got := "JSON " + k.Got
		if v := valueAt(doc, loc); jsonKind(v) == "number" {
			got = numberText(v)
		}
		ps.add(path, prioType, "must be "+typeNames(k.Want)+", got "+got)
	case *kind.Const:
		ps.add(path, prioValue, "must be "+display(k.Want))
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		ps.add(path, prioValue, display(k.Got)+" is not "+orList(want))
	case *kind.Pattern:
		ps.add(path, prioShape, patternMessage(k.Want, k.Got))
	case *kind.Format:
		ps.add(path, prioShape, formatMessage(k.Want, k.Got))
	case *kind.MaxLength:
		ps.add(path, prioRange, fmt.Sprintf("longer than %d characters", k.Want))
	case *kind.MinLength:
		ps.add(path, prioRange, fmt.Sprintf("shorter than %d characters", k.Want))
	case *kind.Minimum:
		if k.Want.Cmp(big.NewRat(1, 1)) == 0 {
			ps.add(path, prioRange, "must be positive, got "+numberText(valueAt(doc, loc)))
		} else {
			ps.add(path, prioRange, "must be ≥ "+ratString(k.Want)+", got "+numberText(valueAt(doc, loc)))
		}
	case *kind.Maximum:
		ps.add(path, prioRange, "must be ≤ "+ratString(k.Want)+", got "+numberText(valueAt(doc, loc)))
	default:
		ps.add(path, prioOther, ve.ErrorKind.LocalizedString(english))
	}
}

// Patterns of the v1 schemas with a message that says what is wanted. A pattern without one
// gets a generic message; TestEverySchemaPatternHasAMessage keeps this table complete.
const (
	currencyPattern = `^[A-Za-z]{3}$`
	phonePattern    = `^\+[1-9][0-9]{6,14}$`
	localePattern   = `^[A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*$`
	timeZonePattern = `^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	dateTimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	gatewayPattern  = `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`
	binPattern      = `^[0-9]{6,8}$`
	countryPattern  = `^[A-Za-z]{2}$`
)

var patternMessages = map[string]func(string) string{
	idPattern: func(s string) string {
		return quote(s) + " must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
	},
	currencyPattern: func(s string) string {
		if _, err := money.ParseCurrency(s); err != nil {
			return err.Error()
		}
		return quote(s) + " is not a 3-letter ISO 4217 currency code"
	},
	// Never repeats the number.
	phonePattern: func(s string) string {
		if _, err := NormalizePhone(s); err != nil {
			return err.Error()
		}
		return "must be in E.164 form, e.g. +14155550123"
	},
	localePattern:   func(s string) string { return quote(s) + " is not a BCP 47 language tag like en-US" },
	timeZonePattern: func(s string) string { return quote(s) + " is not an IANA time zone like Europe/Berlin" },
	dateTimePattern: func(s string) string { return quote(s) + " is not an RFC 3339 time" },
	gatewayPattern: func(s string) string {
		return quote(s) + " must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
	},
	// Never repeats the value: it could be a whole card number sent by mistake.
	binPattern:     func(string) string { return "must be the first 6 to 8 digits of the card number (a BIN), nothing more" },
	countryPattern: func(s string) string { return quote(s) + " is not a 2-letter ISO 3166-1 country code like DE" },
	// Never repeats the value (a name).
	controlPattern: func(string) string {
		return "must not contain control characters such as line breaks or tabs"
	},
}

func patternMessage(pattern, s string) string {
	if f := patternMessages[pattern]; f != nil {
		return f(s)
	}
	return quote(s) + " does not match " + pattern
}

func formatMessage(format string, v any) string {
	s, _ := v.(string)
	switch format {
	case "date-time":
		return quote(s) + " is not an RFC 3339 time"
	case "email":
		return "not a valid email address" // never repeats the address
	}
	return display(v) + " is not a valid " + format
}

// typeNames says which JSON types are wanted, in words.
func typeNames(want []string) string {
	names := make([]string, len(want))
	for i, w := range want {
		switch w {
		case "integer":
			names[i] = "an integer"
		case "string":
			names[i] = "a string"
		case "boolean":
			names[i] = "true or false"
		case "object":
			names[i] = "an object"
		case "array":
			names[i] = "an array"
		case "number":
			names[i] = "a number"
		default:
			names[i] = w
		}
	}
	return orList(names)
}

// orList joins "a", "b", "c" as "a, b or c".
func orList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func display(v any) string {
	if s, ok := v.(string); ok {
		return quote(s)
	}
	return fmt.Sprint(v)
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	return r.FloatString(6)
}

// numberText shows a number as it was written, cut to a readable length.
func numberText(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// valueAt returns the value at an instance location, or nil.
func valueAt(v any, loc []string) any {
	for _, tok := range loc {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// plainName matches field names that are shown as they are; others are quoted.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// pathOf is the dotted path of an instance location, "event" for the whole event.
func pathOf(loc []string) string {
	if len(loc) == 0 {
		return "event"
	}
	parts := make([]string, len(loc))
	for i, tok := range loc {
		parts[i] = fieldName(tok)
	}
	return strings.Join(parts, ".")
}

// fieldName shows a field name in a message: as it is when it is plain, quoted and cut
// otherwise, so a hostile name cannot forge another problem or a log line.
func fieldName(s string) string {
	if plainName.MatchString(s) {
		return s
	}
	return quote(s)
}
