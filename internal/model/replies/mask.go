package replies

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	emailRe = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}`)
	// phoneRe: a run of digits with spaces, dashes, dots or parentheses and at least 7
	// digits ("415-555-0100", "415.555.0100", "+1.415.555.0100").
	phoneRe = regexp.MustCompile(`\+?\(?\d[\d \-().]{5,}\d`)
	// maskDateRe: a numeric date with its year ("2026-12-15", "15.12.2026", "12/15/26"),
	// which Mask keeps: it has the digits of a phone number but is the promise.
	maskDateRe = regexp.MustCompile(`\b(?:\d{4}([-./])\d{1,2}([-./])\d{1,2}|\d{1,2}([-./])\d{1,2}([-./])(?:\d{4}|\d{2}))\b\.?`)
	digitsRe   = regexp.MustCompile(`\d{6,}`)
	// urlRe: a link with any scheme (also defanged ones such as hxxps://), www., a host
	// followed by a path ("bit.ly/3xYz"), or a bare host on a common top-level domain.
	urlRe = regexp.MustCompile(`(?i)\b(?:[a-z][a-z0-9+.-]{1,15}://\S+|www\.\S+|(?:[a-z0-9-]+\.)+[a-z]{2,24}/\S*|(?:[a-z0-9-]+\.)+(?:com|net|org|info|biz|io|ly|co|me|app|link|xyz|de|es|fr|uk|us|eu)\b)`)
)

// Mask removes what must never be kept with a reply: email addresses, links, phone numbers
// and digit runs of six or more (card, account or phone numbers), control characters, and
// extra spaces; a text longer than max runes (0: no limit) keeps its first and last max/2.
// Dates such as "15.12.", "12/15", "2026-12-15", "15.12.2026" and "el 15" survive.
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
	text = maskDigits(text)
	text = strings.Join(strings.Fields(text), " ")
	if max > 0 && utf8.RuneCountInString(text) > max {
		// Keep the beginning and the end: a long paste often ends with the customer's words.
		r := []rune(text)
		head := max / 2
		text = string(r[:head]) + " … " + string(r[len(r)-(max-head):])
	}
	return text
}

// maskDigits masks phone numbers and long digit runs outside the numeric dates of text.
func maskDigits(text string) string {
	var b strings.Builder
	last := 0
	for _, loc := range maskDateRe.FindAllStringSubmatchIndex(text, -1) {
		if !sameSeparators(text, loc) || partOfLongerNumber(text, loc[0], loc[1]) {
			continue
		}
		b.WriteString(maskNumbers(text[last:loc[0]]))
		b.WriteString(text[loc[0]:loc[1]])
		last = loc[1]
	}
	b.WriteString(maskNumbers(text[last:]))
	return b.String()
}

// sameSeparators reports whether a maskDateRe match uses one separator twice ("2026-12-15",
// not "415-555.0100" read as a date).
func sameSeparators(text string, loc []int) bool {
	for g := 2; g+3 < len(loc); g += 4 {
		if loc[g] >= 0 {
			return text[loc[g]:loc[g+1]] == text[loc[g+2]:loc[g+3]]
		}
	}
	return false
}

// partOfLongerNumber reports whether text[i:j] continues a number around it ("06.12.34" of
// the phone number "06.12.34.56.78" is no date).
func partOfLongerNumber(text string, i, j int) bool {
	isDigit := func(k int) bool { return k >= 0 && k < len(text) && text[k] >= '0' && text[k] <= '9' }
	isSep := func(k int) bool { return k >= 0 && k < len(text) && strings.IndexByte("-./+", text[k]) >= 0 }
	if isDigit(j) || (isSep(j) && isDigit(j+1)) || (isSep(i-1) && (isDigit(i-2) || text[i-1] == '+')) {
		return true
	}
	return false
}

// maskNumbers replaces phone numbers and digit runs of six or more.
func maskNumbers(text string) string {
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
	return digitsRe.ReplaceAllString(text, "[number]")
}

// quoteHeaderRe is the line an email client puts above the quoted message it answers.
var quoteHeaderRe = regexp.MustCompile(`(?im)^\s*(?:On .{0,200} wrote:|El .{0,200} escribi[oó]:|Am .{0,200} schrieb .{0,200}:|-+\s*Original Message\s*-+|-+\s*Urspr[üu]ngliche Nachricht\s*-+|-+\s*Mensaje original\s*-+|-+\s*Original-Nachricht\s*-+)\s*$`)

// outlookHeaderRe is the header block Outlook (desktop and web) and other clients put above
// the message they quote: a "From:" line followed by its "Sent:" or "Date:" line, in the
// shipped languages ("De: / Enviado:", "Von: / Gesendet:"), sometimes in bold ("*From:*").
var outlookHeaderRe = regexp.MustCompile(`(?im)^[ \t]*\*?(?:From|De|Von)\*?:[^\n]*\n[ \t]*\*?(?:Sent|Date|Enviado(?: el)?|Fecha|Gesendet|Datum)\*?:`)

// outlookRuleRe is the line Outlook draws above that header block.
var outlookRuleRe = regexp.MustCompile(`(?:[ \t]*[_\-=]{8,}[ \t]*\r?\n?\s*)+$`)

// StripQuoted keeps the customer's own words of an email reply: the text above the quoted
// message ("On … wrote:", "El … escribió:", "Am … schrieb …:", "-----Original Message-----",
// Outlook's "From: / Sent: / To: / Subject:" block and its es/de forms) and no line quoted
// with ">".
func StripQuoted(text string) string {
	if loc := quoteHeaderRe.FindStringIndex(text); loc != nil {
		text = text[:loc[0]]
	}
	if loc := outlookHeaderRe.FindStringIndex(text); loc != nil {
		text = outlookRuleRe.ReplaceAllString(strings.TrimRight(text[:loc[0]], " \t\r\n"), "")
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
