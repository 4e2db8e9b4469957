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
	numDateRe = regexp.MustCompile(`\b(\d{1,2})[./](\d{1,2})(?:[./](\d{2,4}))?\b`)
	inDaysRe  = regexp.MustCompile(`\b(?:in|en|within|dentro de) (\d{1,2}) (?:days?|dias?|tagen?)\b`)
)

// PromisedDate finds the date a reply promises, relative to now (the reply's time in the
// customer's zone), as YYYY-MM-DD: a day of the month ("on the 15th", "el 15", "am 15."),
// a day and month ("15 December", "15. Dezember", "el 15 de diciembre", "12/15"), a
// weekday ("Friday", "el viernes", "am Freitag"), or a relative day ("tomorrow", "mañana",
// "morgen", "next week", "in 3 days", "end of the month"). A day already past this month is
// next month's. ok is false when no date is found.
func PromisedDate(text string, now time.Time) (string, bool) {
	s := strings.ToLower(fold(text))
	s = strings.NewReplacer("'", "", "’", "", ",", " ").Replace(s)
	s = strings.Join(strings.Fields(s), " ")
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	if d, ok := explicitDate(s, today); ok {
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

// explicitDate finds a day of the month, with or without its month.
func explicitDate(s string, today time.Time) (time.Time, bool) {
	for _, m := range dayMonRe.FindAllStringSubmatch(s, -1) {
		if mon, ok := months[m[2]]; ok {
			return dayOf(today, atoi(m[1]), mon)
		}
	}
	for _, m := range monDayRe.FindAllStringSubmatch(s, -1) {
		if mon, ok := months[m[1]]; ok {
			return dayOf(today, atoi(m[2]), mon)
		}
	}
	if m := numDateRe.FindStringSubmatch(s); m != nil {
		a, b := atoi(m[1]), atoi(m[2])
		day, mon := a, b // day first (es, de, most of the world)
		if b > 12 && a <= 12 {
			day, mon = b, a // 12/15: month first (en-US)
		}
		if mon >= 1 && mon <= 12 {
			return dayOf(today, day, time.Month(mon))
		}
	}
	for _, re := range []*regexp.Regexp{ordinalRe, onTheRe, elRe, amRe} {
		if m := re.FindStringSubmatch(s); m != nil {
			return dayOf(today, atoi(m[1]), 0)
		}
	}
	return time.Time{}, false
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
