package replies

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Month and weekday names in the shipped languages (folded: no accents, lower case).
var (
	months = map[string]time.Month{
		"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
		"june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
		"october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
		"enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
		"septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
		"januar": 1, "februar": 2, "marz": 3, "juni": 6, "juli": 7, "oktober": 10, "dezember": 12,
	}
	weekdays = map[string]time.Weekday{
		"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
		"domingo": 0, "lunes": 1, "martes": 2, "miercoles": 3, "jueves": 4, "viernes": 5, "sabado": 6,
		"sonntag": 0, "montag": 1, "dienstag": 2, "mittwoch": 3, "donnerstag": 4, "freitag": 5, "samstag": 6,
	}
	relative = map[string]int{
		"today": 0, "tonight": 0, "hoy": 0, "heute": 0,
		"tomorrow": 1, "manana": 1, "morgen": 1, "ubermorgen": 2, "pasado manana": 2, "day after tomorrow": 2,
		"next week": 7, "proxima semana": 7, "semana que viene": 7, "nachste woche": 7, "kommende woche": 7,
		"end of the month": -1, "end of month": -1, "fin de mes": -1, "final de mes": -1, "ende des monats": -1, "monatsende": -1,
	}
)

var (
	// "the 15th", "on the 15", "15th"; "el 15", "el dia 15", "el 15 de diciembre"; "am 15.",
	// "zum 15.", "den 15."; "december 15", "15 december", "15. dezember", "15 de diciembre".
	ordinalRe = regexp.MustCompile(`\b(\d{1,2})(?:st|nd|rd|th)\b`)
	onTheRe   = regexp.MustCompile(`\b(?:on|by|before|until) the (\d{1,2})\b`)
	elRe      = regexp.MustCompile(`\b(?:el|dia|antes del|hasta el) (?:dia )?(\d{1,2})\b`)
	amRe      = regexp.MustCompile(`\b(?:am|zum|den|bis|bis zum|vor dem) (\d{1,2})\.`)
	dayMonRe  = regexp.MustCompile(`\b(\d{1,2})(?:\.|st|nd|rd|th)? ?(?:de |of )?([a-z]{3,10})\b`)
	monDayRe  = regexp.MustCompile(`\b([a-z]{3,10}) (\d{1,2})(?:st|nd|rd|th)?\b`)
	numDateRe = regexp.MustCompile(`\b(\d{1,2})([./-])(\d{1,2})(?:[./-](\d{4}|\d{2}))?\b(\.?)`)
	isoDateRe = regexp.MustCompile(`\b(\d{4})[-./](\d{1,2})[-./](\d{1,2})\b`)
	// amountRe: money, which is no date: "$5.12", "5,12 €", "EUR 5.12", "5.12 dollars".
	amountRe = regexp.MustCompile(`(?:[$€£]|\b(?:usd|eur|gbp|mxn)\b) ?\d+(?:[.,]\d+)*|\d+(?:[.,]\d+)* ?(?:[$€£]|\b(?:usd|eur|gbp|mxn|euros?|dollars?|bucks|dolares|pesos)\b)`)
	inDaysRe = regexp.MustCompile(`\b(?:in|en|within|dentro de) (\d{1,2}) (?:days?|dias?|tagen?)\b`)
)

// PromisedDate finds the date a reply promises, relative to now (the reply's time in the
// customer's zone), as YYYY-MM-DD: a day of the month ("on the 15th", "el 15", "am 15."),
// a day and month ("15 December", "15. Dezember", "el 15 de diciembre", "12/15",
// "2026-12-15"), a weekday ("Friday", "el viernes", "am Freitag"), or a relative day
// ("tomorrow", "mañana", "morgen", "next week", "in 3 days", "end of the month"). A day
// already past this month is next month's. locale is the customer's (BCP 47, "en-US"; may
// be empty): numeric dates are month-first in month-first locales (en-US and the other
// locales of dateOrderOf), day-first in the others, and a numeric date both ways valid
// ("12/10") with no locale that says which is no date (ok false: support looks at it rather
// than the run pausing on a guess). Amounts ("$5.12", "5,12 €", and "5.12" where the dot is
// the decimal separator) are no dates. ok is false when no date is found.
func PromisedDate(text string, now time.Time, locale string) (string, bool) {
	s := strings.ToLower(fold(text))
	s = amountRe.ReplaceAllString(s, " ")
	s = strings.NewReplacer("'", "", "’", "", ",", " ").Replace(s)
	s = strings.Join(strings.Fields(s), " ")
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	d, ok, ambiguous := explicitDate(s, today, localeOf(locale))
	switch {
	case ambiguous:
		return "", false
	case ok:
		return d.Format(time.DateOnly), true
	}
	if m := inDaysRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return today.AddDate(0, 0, n).Format(time.DateOnly), true
	}
	for _, w := range strings.Fields(s) {
		if wd, ok := weekdays[w]; ok {
			ahead := (int(wd) - int(today.Weekday()) + 7) % 7
			if ahead == 0 {
				ahead = 7
			}
			return today.AddDate(0, 0, ahead).Format(time.DateOnly), true
		}
	}
	padded := " " + s + " "
	best, found := 0, false
	for k, n := range relative {
		if strings.Contains(padded, " "+k+" ") && (!found || len(k) > best) {
			best, found = len(k), true
			switch {
			case n < 0:
				s = today.AddDate(0, 1, -today.Day()).Format(time.DateOnly)
			default:
				s = today.AddDate(0, 0, n).Format(time.DateOnly)
			}
		}
	}
	if found {
		return s, true
	}
	return "", false
}

// explicitDate finds a day of the month, with or without its month; ambiguous is true when
// the only date found is a numeric one the locale cannot order.
func explicitDate(s string, today time.Time, loc dateLocale) (d time.Time, ok, ambiguous bool) {
	if m := isoDateRe.FindStringSubmatch(s); m != nil {
		d := time.Date(atoi(m[1]), time.Month(atoi(m[2])), atoi(m[3]), 0, 0, 0, 0, today.Location())
		if int(d.Month()) == atoi(m[2]) && d.Day() == atoi(m[3]) {
			return d, true, false
		}
	}
	for _, m := range dayMonRe.FindAllStringSubmatch(s, -1) {
		if mon, ok := months[m[2]]; ok {
			d, ok := dayOf(today, atoi(m[1]), mon)
			return d, ok, false
		}
	}
	for _, m := range monDayRe.FindAllStringSubmatch(s, -1) {
		if mon, ok := months[m[1]]; ok {
			d, ok := dayOf(today, atoi(m[2]), mon)
			return d, ok, false
		}
	}
	for _, m := range numDateRe.FindAllStringSubmatch(s, -1) {
		d, ok, ambiguous := numericDate(m, today, loc)
		if ok || ambiguous {
			return d, ok, ambiguous
		}
	}
	for _, re := range []*regexp.Regexp{ordinalRe, onTheRe, elRe, amRe} {
		if m := re.FindStringSubmatch(s); m != nil {
			d, ok := dayOf(today, atoi(m[1]), 0)
			return d, ok, false
		}
	}
	return time.Time{}, false, false
}

// numericDate reads a numeric date match of numDateRe ("12/10", "15.12.", "5/1/2027") in
// the locale's order. "5.12" with the dot as the locale's decimal separator and neither a
// year nor a closing dot is an amount, not a date.
func numericDate(m []string, today time.Time, loc dateLocale) (d time.Time, ok, ambiguous bool) {
	a, b := atoi(m[1]), atoi(m[3])
	if m[2] == "-" && m[4] == "" {
		return time.Time{}, false, false // "10-12 days": a range
	}
	if m[2] == "." && m[4] == "" && m[5] == "" && len(m[3]) == 2 && loc.decimalDot {
		return time.Time{}, false, false // 5.12: cents
	}
	day, mon := a, b
	switch {
	case a > 12 && b <= 12: // 15/12: day first, whatever the locale
	case b > 12 && a <= 12: // 12/15: month first
		day, mon = b, a
	case a == b:
	case loc.order == monthFirst:
		day, mon = b, a
	case loc.order == orderUnknown:
		return time.Time{}, false, true
	}
	if mon < 1 || mon > 12 {
		return time.Time{}, false, false
	}
	if m[4] != "" {
		y := atoi(m[4])
		if y < 100 {
			y += 2000
		}
		d := time.Date(y, time.Month(mon), day, 0, 0, 0, 0, today.Location())
		return d, d.Day() == day, false
	}
	d, ok = dayOf(today, day, time.Month(mon))
	return d, ok, false
}

// dayOf is the next date on or after today with that day (and month, when not 0).
func dayOf(today time.Time, day int, mon time.Month) (time.Time, bool) {
	if day < 1 || day > 31 {
		return time.Time{}, false
	}
	for i := 0; i < 14; i++ { // this month or year, then the next ones
		var d time.Time
		if mon == 0 {
			d = time.Date(today.Year(), today.Month()+time.Month(i), day, 0, 0, 0, 0, today.Location())
			if d.Day() != day { // no 31st this month
				continue
			}
		} else {
			d = time.Date(today.Year()+i, mon, day, 0, 0, 0, 0, today.Location())
			if d.Day() != day {
				return time.Time{}, false
			}
		}
		if !d.Before(today) {
			return d, true
		}
	}
	return time.Time{}, false
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// PauseUntil is when a run paused by a promise to pay on promisedOn (YYYY-MM-DD) goes on:
// the start of the next day in loc, at most maxDays after now. ok is false when the date
// does not parse, lies before today, or lies beyond the bound (then support looks at it).
func PauseUntil(promisedOn string, now time.Time, loc *time.Location, maxDays int) (time.Time, bool) {
	d, err := time.ParseInLocation(time.DateOnly, promisedOn, loc)
	if err != nil {
		return time.Time{}, false
	}
	local := now.In(loc)
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	if d.Before(today) || d.After(today.AddDate(0, 0, maxDays)) {
		return time.Time{}, false
	}
	return d.AddDate(0, 0, 1), true
}

type dateOrder int

const (
	orderUnknown dateOrder = iota
	dayFirst
	monthFirst
)

// dateLocale is how a locale writes numeric dates and decimals.
type dateLocale struct {
	order      dateOrder
	decimalDot bool // "5.12" is five and twelve cents
}

// monthFirstRegions write numeric dates month first (CLDR's short date patterns M/d/yy:
// the United States and its territories, the Philippines, the Pacific states that use
// US formats); monthFirstLanguages do so in every region ("12/10" in ja, zh, ko).
var (
	monthFirstRegions   = map[string]bool{"US": true, "PR": true, "GU": true, "AS": true, "MP": true, "VI": true, "UM": true, "PH": true, "FM": true, "MH": true, "PW": true}
	monthFirstLanguages = map[string]bool{"ja": true, "zh": true, "ko": true}
	// commaDecimalLanguages write "5,12" for five and twelve cents, except in the
	// dotDecimalRegions (es-MX, es-US, de-CH, …).
	commaDecimalLanguages = map[string]bool{"de": true, "es": true, "fr": true, "it": true, "pt": true, "nl": true}
	dotDecimalRegions     = map[string]bool{"US": true, "MX": true, "PR": true, "GT": true, "HN": true, "SV": true, "NI": true, "PA": true, "DO": true, "PE": true, "PH": true, "CH": true, "LI": true, "GB": true, "IE": true}
)

// localeOf reads a BCP 47 locale ("en-US", "es_MX", "de"). A language without a region
// that is written in both orders (en) or no locale at all leaves the order unknown.
func localeOf(locale string) dateLocale {
	parts := strings.FieldsFunc(locale, func(r rune) bool { return r == '-' || r == '_' })
	lang, region := "", ""
	for i, p := range parts {
		switch {
		case i == 0:
			lang = strings.ToLower(p)
		case len(p) == 2 || (len(p) == 3 && p[0] >= '0' && p[0] <= '9'):
			region = strings.ToUpper(p)
		}
	}
	l := dateLocale{decimalDot: !commaDecimalLanguages[lang] || dotDecimalRegions[region]}
	switch {
	case monthFirstRegions[region] || monthFirstLanguages[lang]:
		l.order = monthFirst
	case region != "" || (lang != "" && lang != "en"):
		l.order = dayFirst
	}
	return l
}
