package events

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits of a customer's text fields, in characters (Unicode code points, as JSON Schema's
// maxLength counts). The payment.failed schema says the same (a test keeps them in
// agreement) and the customer import applies them too.
const (
	MaxNameLen     = 200
	MaxEmailLen    = 254 // RFC 5321's path limit less the angle brackets
	MaxLocaleLen   = 35  // RFC 5646 §4.4.1: the length a language tag buffer must hold
	MaxTimeZoneLen = 64
	MaxPlanLen     = 64
)

// CheckCustomerText checks a customer text field (name, email, locale, time_zone or plan)
// for its length limit, valid UTF-8 and, in name and plan, control characters (Unicode Cc:
// NUL, tabs, line breaks, DEL, C1; and U+2028/U+2029). The message never repeats the value.
func CheckCustomerText(field, s string) error {
	max := map[string]int{"name": MaxNameLen, "email": MaxEmailLen, "locale": MaxLocaleLen,
		"time_zone": MaxTimeZoneLen, "plan": MaxPlanLen}[field]
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); max > 0 && n > max {
		return fmt.Errorf("%s: longer than %d characters (%d)", field, max, n)
	}
	if field == "name" || field == "plan" {
		for _, r := range s {
			if isControl(r) {
				return fmt.Errorf("%s: must not contain control characters such as line breaks or tabs (found %U)", field, r)
			}
		}
	}
	return nil
}

// isControl is Unicode category Cc (C0, DEL, C1) and the line and paragraph separators.
func isControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// controlPattern is the schema's pattern for name and plan: no character isControl
// accepts. The JSON file spells it with \u escapes, so any regular expression engine reads
// the same characters.
const controlPattern = "^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
