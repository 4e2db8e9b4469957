package policy

//go:generate go run gen_countryzones.go /usr/share/zoneinfo/zone1970.tab

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
)

// Allowed hours: a message may be handed to a provider only while the local time of day is
// inside quiet_hours (start inclusive, end exclusive) in the customer's time zone.
//
// The zone is the customer's IANA time_zone when it is valid and not UTC (the store's
// default when none was given). Otherwise it is inferred, and there may be several
// candidates:
//   - the zones libphonenumber maps the phone number's prefix to (+1 415: Los Angeles);
//   - else the zones of the phone number's country (tzdata zone1970.tab);
//   - else the zones of the locale's explicit region (en-US: every US zone; "en" names no
//     region and is not used);
//   - else UTC, and the window's Zone says that nothing was known.
//
// (Customers carry no billing country, so there is no step for it.)
//
// With several candidates the window is their intersection: allowed in every candidate
// zone, so the narrowest. The candidates are taken in order (the most likely first); one
// whose windows do not overlap those of the candidates before it within the next
// windowSearchDays (e.g. zones 12 hours apart) is left out and named in the window's Zone,
// so the first candidate's hours are always kept.

// windowSearchDays bounds how far ahead the common window of several candidate zones is
// looked for before a candidate is left out.
const windowSearchDays = 3

// ZoneHints is what is known of a customer's whereabouts.
type ZoneHints struct {
	TimeZone string // IANA name; used when valid and not UTC
	Phone    string // E.164; its prefix or country is used when TimeZone is not valid
	Locale   string // BCP 47; its explicit region is used when neither of the above is known
}

// Zones is the customer's time zone or the candidates inferred for it.
type Zones struct {
	Locs []*time.Location // never empty when returned by CustomerZones
	// From says how they were found: "" for the customer's own time_zone, else e.g.
	// "phone number prefix", "phone country US", "locale region US" or "nothing known".
	From string
}

// String names the zones and how they were found, without the phone number itself.
func (z Zones) String() string {
	names := make([]string, 0, 4)
	for i, l := range z.Locs {
		if i == 3 && len(z.Locs) > 4 {
			names = append(names, fmt.Sprintf("… %d more, to %s", len(z.Locs)-4, z.Locs[len(z.Locs)-1]))
			break
		}
		names = append(names, l.String())
	}
	list := strings.Join(names, ", ")
	switch z.From {
	case "":
		return list
	case fromNothing:
		return list + " (no valid time zone, phone number or locale region is known)"
	}
	return "inferred from " + z.From + ": " + list
}

const fromNothing = "nothing known"

// CustomerZones resolves the zones in which the customer's allowed hours are computed.
func CustomerZones(h ZoneHints) Zones {
	if h.TimeZone != "" && h.TimeZone != "Local" && !isUTC(h.TimeZone) {
		if loc := location(h.TimeZone); loc != nil {
			return Zones{Locs: []*time.Location{loc}}
		}
	}
	if h.Phone != "" {
		if n, err := phonenumbers.Parse(h.Phone, ""); err == nil && phonenumbers.IsValidNumber(n) {
			if names, err := phonenumbers.GetTimezonesForNumber(n); err == nil {
				if locs := locations(names); len(locs) > 0 {
					return Zones{Locs: locs, From: "phone number prefix"}
				}
			}
			if cc := phonenumbers.GetRegionCodeForNumber(n); cc != "" {
				if locs := locations(countryZones[cc]); len(locs) > 0 {
					return Zones{Locs: locs, From: "phone country " + cc}
				}
			}
		}
	}
	if h.Locale != "" {
		if tag, err := language.Parse(h.Locale); err == nil {
			if r, conf := tag.Region(); conf == language.Exact {
				if locs := locations(countryZones[r.String()]); len(locs) > 0 {
					return Zones{Locs: locs, From: "locale region " + r.String()}
				}
			}
		}
	}
	return Zones{Locs: []*time.Location{time.UTC}, From: fromNothing}
}

// isUTC reports whether name is UTC under one of its names. UTC is no one's civil time,
// and it is what the store records when a profile gave no time zone, so it means unknown.
func isUTC(name string) bool {
	switch strings.TrimPrefix(name, "Etc/") {
	case "UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich":
		return true
	}
	return false
}

var locCache sync.Map // name → *time.Location

// location loads an IANA zone once; nil when it is unknown to this system.
func location(name string) *time.Location {
	if l, ok := locCache.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	locCache.Store(name, l)
	return l
}

func locations(names []string) []*time.Location {
	var out []*time.Location
	for _, n := range names {
		if n == phonenumbers.UNKNOWN_TIMEZONE {
			continue
		}
		if l := location(n); l != nil {
			out = append(out, l)
		}
	}
	return out
}

// ParseQuietHours returns the window from start to end ("HH:MM", end after start; "24:00"
// is the end of the day), as in policy.yaml's quiet_hours.
func ParseQuietHours(start, end string) (QuietHours, error) {
	q := QuietHours{Start: start, End: end}
	var err error
	if q.start, err = parseClock(start); err != nil {
		return QuietHours{}, fmt.Errorf("quiet_hours.start: %w", err)
	}
	if q.end, err = parseClock(end); err != nil {
		return QuietHours{}, fmt.Errorf("quiet_hours.end: %w", err)
	}
	if q.end <= q.start {
		return QuietHours{}, fmt.Errorf("quiet_hours: end %s must be after start %s", end, start)
	}
	return q, nil
}

// Window is an allowed-hours window: a message may go out from Start until End (exclusive).
type Window struct {
	Start, End time.Time // UTC
	Zone       string    // the zone or candidates it was computed in (Zones.String), and any left out
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End)
}

// WindowAt returns the allowed-hours window at or after now in zones (see the rules at the
// top of this file): Start is now when now is allowed. Daylight-saving changes are handled
// as in spans. The error says that q was not made by Parse or ParseQuietHours.
func (q QuietHours) WindowAt(now time.Time, zones Zones) (Window, error) {
	if q.end <= q.start {
		return Window{}, fmt.Errorf("quiet hours %q-%q are not a valid window (use policy.Parse or ParseQuietHours)", q.Start, q.End)
	}
	locs := zones.Locs
	if len(locs) == 0 {
		locs = []*time.Location{time.UTC}
		zones = Zones{Locs: locs, From: fromNothing}
	}
	horizon := now.Add(windowSearchDays * 24 * time.Hour)
	common := q.spans(now, horizon, locs[0])
	var left []string
	for _, loc := range locs[1:] {
		if both := intersect(common, q.spans(now, horizon, loc)); len(both) > 0 {
			common = both
		} else {
			left = append(left, loc.String())
		}
	}
	w := Window{Start: common[0].start, End: common[0].end, Zone: zones.String()}
	if w.Start.Before(now) {
		w.Start = now
	}
	w.Start, w.End = w.Start.UTC(), w.End.UTC()
	if len(left) > 0 {
		w.Zone += "; left out, no hours in common with the others: " + strings.Join(left, ", ")
	}
	return w, nil
}

type span struct{ start, end time.Time }

// zoneSlack is more than any UTC offset (-12h to +14h): the instants at which a wall-clock
// time occurs lie within it.
const zoneSlack = 15 * time.Hour

// spans returns the instants at which loc's wall clock is inside the window, as ordered,
// merged spans that end after now and start before horizon.
//
// Each calendar date's window is computed piecewise between the zone's offset changes, so
// a daylight-saving change never moves or skips a day's window: on a day whose clocks jump
// forward over the window's start (America/Santiago, 00:00 to 01:00) it opens at the jump;
// on a day whose clocks fall back into it, an hour whose wall-clock time is outside the
// window is left out although it lies between the window's start and end instants.
func (q QuietHours) spans(now, horizon time.Time, loc *time.Location) []span {
	y, mo, d := now.In(loc).Date()
	var all []span
	for day := -1; ; day++ {
		ws := time.Date(y, mo, d+day, 0, 0, 0, 0, time.UTC).Add(q.start) // wall-clock times, written as UTC
		we := ws.Add(q.end - q.start)
		if !ws.Add(-zoneSlack).Before(horizon) {
			break
		}
		limit := we.Add(zoneSlack)
		for p := ws.Add(-zoneSlack); p.Before(limit); {
			lp := p.In(loc)
			_, off := lp.Zone()
			_, next := lp.ZoneBounds()
			if next.IsZero() || next.After(limit) || !next.After(p) {
				next = limit
			}
			o := time.Duration(off) * time.Second
			if s := (span{later(p, ws.Add(-o)), earlier(next, we.Add(-o))}); s.start.Before(s.end) {
				all = append(all, s)
			}
			p = next
		}
	}
	slices.SortFunc(all, func(a, b span) int { return a.start.Compare(b.start) })
	var out []span
	for _, s := range all {
		if !s.end.After(now) || !s.start.Before(horizon) {
			continue
		}
		if n := len(out); n > 0 && !s.start.After(out[n-1].end) {
			out[n-1].end = later(out[n-1].end, s.end)
			continue
		}
		out = append(out, s)
	}
	return out
}

// intersect returns the non-empty overlaps of two ordered lists of disjoint spans.
func intersect(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		s := span{later(a[i].start, b[j].start), earlier(a[i].end, b[j].end)}
		if s.start.Before(s.end) {
			out = append(out, s)
		}
		if a[i].end.Before(b[j].end) {
			i++
		} else {
			j++
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
