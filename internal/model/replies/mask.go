package replies

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	emailRe = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}`)
	// phoneRe: a run of digits with spaces, dashes or parentheses and at least 7 digits.
	phoneRe  = regexp.MustCompile(`\+?\(?\d[\d \-()]{5,}\d`)
	digitsRe = regexp.MustCompile(`\d{6,}`)
	urlRe    = regexp.MustCompile(`(?i)\b(?:https?://|www\.)\S+`)
)

// Mask removes what must never be kept with a reply: email addresses, links, phone numbers
// and digit runs of six or more (card, account or phone numbers), control characters, and
// extra spaces; a text longer than max runes (0: no limit) keeps its first and last max/2. Dates such as "15.12.",
// "12/15" and "el 15" survive.
func Mask(text string, max int) string {
	text = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return -1
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return ' '
		}
		return r
	}, text)
	text = emailRe.ReplaceAllString(text, "[email]")
	text = urlRe.ReplaceAllString(text, "[link]")
	text = phoneRe.ReplaceAllStringFunc(text, func(m string) string {
		n := 0
		for _, r := range m {
			if r >= '0' && r <= '9' {
				n++
			}
		}
		if n >= 7 {
			return "[phone]"
		}
		return m
	})
	text = digitsRe.ReplaceAllString(text, "[number]")
	text = strings.Join(strings.Fields(text), " ")
	if max > 0 && utf8.RuneCountInString(text) > max {
		// Keep the beginning and the end: a long paste often ends with the customer's words.
		r := []rune(text)
		head := max / 2
		text = string(r[:head]) + " … " + string(r[len(r)-(max-head):])
	}
	return text
}

// quoteHeaderRe is the line an email client puts above the quoted message it answers.
var quoteHeaderRe = regexp.MustCompile(`(?im)^\s*(?:On .{0,200} wrote:|El .{0,200} escribi[oó]:|Am .{0,200} schrieb .{0,200}:|-+\s*Original Message\s*-+|-+\s*Urspr[üu]ngliche Nachricht\s*-+|-+\s*Mensaje original\s*-+)\s*$`)

// StripQuoted keeps the customer's own words of an email reply: the text above the quoted
// message ("On … wrote:", "El … escribió:", "Am … schrieb …:") and no line quoted with ">".
func StripQuoted(text string) string {
	if loc := quoteHeaderRe.FindStringIndex(text); loc != nil {
		text = text[:loc[0]]
	}
	lines := strings.Split(text, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), ">") {
			out = append(out, l)
		}
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
