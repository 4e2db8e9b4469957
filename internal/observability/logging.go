package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// NewLogger returns a logger writing JSON (format "json", the default) or text (format
// "text") lines to w at level, through NewMaskingHandler: email addresses and phone
// numbers never reach the output.
func NewLogger(format string, level slog.Leveler, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(NewMaskingHandler(h))
}

// NewMaskingHandler wraps h so that the message and every attribute value (string values,
// errors, Stringers, and any other value whose text or JSON contains contact data),
// including those in groups and those added by Logger.With, are passed through Mask.
func NewMaskingHandler(h slog.Handler) slog.Handler {
	if m, ok := h.(*maskingHandler); ok {
		return m
	}
	return &maskingHandler{inner: h}
}

type maskingHandler struct{ inner slog.Handler }

func (m *maskingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return m.inner.Enabled(ctx, l)
}

func (m *maskingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Mask(r.Message), r.PC)
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, maskAttr(a))
		return true
	})
	out.AddAttrs(attrs...)
	return m.inner.Handle(ctx, out)
}

func (m *maskingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = maskAttr(a)
	}
	return &maskingHandler{inner: m.inner.WithAttrs(masked)}
}

func (m *maskingHandler) WithGroup(name string) slog.Handler {
	return &maskingHandler{inner: m.inner.WithGroup(name)}
}

func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Mask(v.String()))
	case slog.KindGroup:
		group := v.Group()
		masked := make([]slog.Attr, len(group))
		for i, g := range group {
			masked[i] = maskAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(masked...)}
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: maskAny(v.Any())}
	}
	return slog.Attr{Key: a.Key, Value: v} // numbers, bools, times and durations
}

// maskAny masks an arbitrary value: errors and Stringers become their masked text; string
// slices are masked element by element; any other value is kept as is unless its %+v or
// JSON form contains contact data, in which case it becomes that masked text.
func maskAny(x any) slog.Value {
	switch t := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(Mask(t.Error()))
	case fmt.Stringer:
		return slog.StringValue(Mask(t.String()))
	case []byte:
		return slog.StringValue(Mask(string(t)))
	case []string:
		out := make([]string, len(t))
		for i, s := range t {
			out[i] = Mask(s)
		}
		return slog.AnyValue(out)
	}
	if s := fmt.Sprintf("%+v", x); Mask(s) != s {
		return slog.StringValue(Mask(s))
	}
	if b, err := json.Marshal(x); err == nil {
		if s := string(b); Mask(s) != s {
			return slog.StringValue(Mask(s))
		}
	}
	return slog.AnyValue(x)
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// phoneRE finds phone number candidates: an optional +, then digits with single
	// spaces, dots, dashes or parentheses between them. maskPhones keeps those with enough
	// digits that stand alone (not inside a longer word or number).
	phoneRE = regexp.MustCompile(`\+?\(?\d(?:[ .\-]?\(?\)?[ .\-]?\d)+`)
)

// Mask replaces email addresses by their first character, "***" and the domain
// ("ada@example.com" → "a***@example.com") and phone numbers by their first digit,
// stars and the last 4 digits ("+14155550123" → "+1******0123"). A phone number is a
// run of digits, optionally formatted with spaces, dots, dashes or parentheses, of 8 to
// 15 digits starting with "+", or 10 to 15 digits without. Shorter numbers (amounts,
// dates, counts) are kept.
func Mask(s string) string {
	if s == "" {
		return s
	}
	if strings.IndexByte(s, '@') >= 0 {
		s = emailRE.ReplaceAllStringFunc(s, maskEmail)
	}
	return maskPhones(s)
}

func maskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	return e[:1] + "***" + e[at:]
}

func maskPhones(s string) string {
	locs := phoneRE.FindAllStringIndex(s, -1)
	if len(locs) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		start, end := loc[0], loc[1]
		if !standsAlone(s, start, end) {
			continue
		}
		masked, ok := maskPhone(s[start:end])
		if !ok {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(masked)
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

var (
	datePrefixRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[ .\-]?`)
	ipv4RE       = regexp.MustCompile(`^\d{1,3}(?:\.\d{1,3}){3}$`)
)

// maskPhone masks a phone number candidate, reporting false when it is not a phone
// number. A leading date (2026-11-30) is kept and the rest examined, so that a date
// followed by a time or a number is not taken for one long number; an IPv4 address is kept.
func maskPhone(cand string) (string, bool) {
	if ipv4RE.MatchString(cand) {
		return "", false
	}
	if p := datePrefixRE.FindString(cand); p != "" {
		rest, ok := maskPhone(cand[len(p):])
		if !ok || len(p) == len(cand) {
			return "", false
		}
		return p + rest, true
	}
	var digits []byte
	for i := 0; i < len(cand); i++ {
		if c := cand[i]; c >= '0' && c <= '9' {
			digits = append(digits, c)
		}
	}
	plus := strings.HasPrefix(cand, "+")
	if n := len(digits); n > 15 || (plus && n < 8) || (!plus && n < 10) {
		return "", false
	}
	var b strings.Builder
	if plus {
		b.WriteByte('+')
	}
	b.WriteByte(digits[0])
	b.WriteString(strings.Repeat("*", len(digits)-5))
	b.Write(digits[len(digits)-4:])
	return b.String(), true
}

// standsAlone reports whether s[start:end] is not part of a longer word, number or
// identifier (like a provider message id "SM0123456789abcdef").
func standsAlone(s string, start, end int) bool {
	isWord := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
	}
	if start > 0 && isWord(s[start-1]) {
		return false
	}
	if end < len(s) && isWord(s[end]) {
		return false
	}
	return true
}
