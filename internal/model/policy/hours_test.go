package policy_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// allowedIn reports whether t's wall-clock time in loc is inside [start, end) minutes of day.
func allowedIn(t time.Time, loc *time.Location, start, end int) bool {
	l := t.In(loc)
	m := l.Hour()*60 + l.Minute()
	return m >= start && m < end
}

func zones(t *testing.T, names ...string) policy.Zones {
	z := policy.Zones{From: "test"}
	for _, n := range names {
		z.Locs = append(z.Locs, mustZone(t, n))
	}
	return z
}

func window(t *testing.T, q policy.QuietHours, now time.Time, z policy.Zones) policy.Window {
	t.Helper()
	w, err := q.WindowAt(now, z)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Before(w.End) || w.Start.Before(now) {
		t.Fatalf("WindowAt(%v) = [%v, %v): empty or before now", now, w.Start, w.End)
	}
	return w
}

func localSpan(w policy.Window, loc *time.Location) string {
	return w.Start.In(loc).Format("2006-01-02 15:04 MST") + " - " + w.End.In(loc).Format("2006-01-02 15:04 MST")
}

func TestSendWindowIsTheLocalAllowedHoursAsInstants(t *testing.T) {
	q := defaultPolicy(t).QuietHours // 09:00-20:00
	ny := mustZone(t, "America/New_York")
	z := policy.CustomerZones(policy.ZoneHints{TimeZone: "America/New_York", Phone: "+4930123456", Locale: "de-DE"})
	// 04:30 UTC is 23:30 the day before in New York: the next window is the next local day's.
	w := window(t, q, time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC), z)
	if got := localSpan(w, ny); got != "2026-11-30 09:00 EST - 2026-11-30 20:00 EST" || w.Zone != "America/New_York" {
		t.Errorf("window = %s in %q, want 2026-11-30 09:00-20:00 EST in America/New_York", got, w.Zone)
	}
	// Inside the window: from now until 20:00.
	now := time.Date(2026, 11, 30, 20, 15, 0, 0, time.UTC) // 15:15 EST
	if w := window(t, q, now, z); !w.Start.Equal(now) || w.End.In(ny).Format("15:04") != "20:00" {
		t.Errorf("inside: window = %s, want from now until 20:00", localSpan(w, ny))
	}
}

func TestSendWindowOnDSTTransitionDays(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	early, err := policy.ParseQuietHours("00:30", "08:00")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, zone string
		q          policy.QuietHours
		now        string // local, in zone
		want       string // local span
	}{
		// Santiago's clocks jump from 00:00 to 01:00 on 2026-09-06: the day still has its window.
		{"Santiago spring forward", "America/Santiago", q, "2026-09-05 23:30", "2026-09-06 09:00 -03 - 2026-09-06 20:00 -03"},
		// 00:30 does not exist that day: the window opens when the clocks jump (01:00), not
		// at 23:00 the evening before, where time.Date puts it.
		{"Santiago skipped start", "America/Santiago", early, "2026-09-05 22:30", "2026-09-06 01:00 -03 - 2026-09-06 08:00 -03"},
		// On 2026-04-04 the hour 23:00-24:00 happens twice (-03, then -04).
		{"Santiago fall back", "America/Santiago", q, "2026-04-04 21:00", "2026-04-05 09:00 -04 - 2026-04-05 20:00 -04"},
		{"Berlin spring forward", "Europe/Berlin", q, "2026-03-28 23:30", "2026-03-29 09:00 CEST - 2026-03-29 20:00 CEST"},
		{"Berlin fall back", "Europe/Berlin", q, "2026-10-24 23:30", "2026-10-25 09:00 CET - 2026-10-25 20:00 CET"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustZone(t, tt.zone)
			now, err := time.ParseInLocation("2006-01-02 15:04", tt.now, loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := localSpan(window(t, tt.q, now, zones(t, tt.zone)), loc); got != tt.want {
				t.Errorf("window = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSendWindowWithoutTimeZoneUsesPhonePrefixNotUTC(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	la := mustZone(t, "America/Los_Angeles")
	// The store records UTC when a profile gave no time zone.
	for _, tz := range []string{"", "UTC", "Etc/UTC", "Mars/Olympus_Mons", "Local"} {
		z := policy.CustomerZones(policy.ZoneHints{TimeZone: tz, Phone: "+14155550123", Locale: "en"})
		// 18:00 UTC is 10:00 in Los Angeles (PST): allowed there.
		now := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
		w := window(t, q, now, z)
		if !w.Start.Equal(now) || localSpan(w, la) != "2026-11-30 10:00 PST - 2026-11-30 20:00 PST" {
			t.Errorf("time_zone %q: window = %s, want until 20:00 Pacific", tz, localSpan(w, la))
		}
		if !strings.Contains(w.Zone, "phone number prefix") || !strings.Contains(w.Zone, "America/Los_Angeles") || strings.Contains(w.Zone, "415") {
			t.Errorf("time_zone %q: Zone = %q, want it to name the inferred zone (and not the number)", tz, w.Zone)
		}
		// 16:00 UTC is 08:00 in Los Angeles: a UTC default would send now.
		if w := window(t, q, time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC), z); localSpan(w, la) != "2026-11-30 09:00 PST - 2026-11-30 20:00 PST" {
			t.Errorf("time_zone %q: at 08:00 Pacific the window = %s, want 09:00-20:00 PST", tz, localSpan(w, la))
		}
	}
}

func TestSendWindowFromLocaleRegionIsNarrowestOfItsZones(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	z := policy.CustomerZones(policy.ZoneHints{Locale: "en-US"})
	if len(z.Locs) < 20 || z.Locs[0].String() != "America/New_York" || z.From != "locale region US" {
		t.Fatalf("en-US zones = %v from %q, want every US zone, New York first", z.Locs, z.From)
	}
	// 02:00 UTC: 16:00 in Honolulu (allowed) but 21:00 in New York (not): wait for the
	// common hours, 09:00 Hawaii (19:00 UTC) to 20:00 New York (01:00 UTC).
	w := window(t, q, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC), z)
	if !w.Start.Equal(time.Date(2026, 11, 30, 19, 0, 0, 0, time.UTC)) || !w.End.Equal(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("en-US window = [%v, %v), want [19:00, 01:00) UTC", w.Start, w.End)
	}
	for _, loc := range z.Locs {
		for _, at := range []time.Time{w.Start, w.End.Add(-time.Minute)} {
			if !allowedIn(at, loc, 9*60, 20*60) {
				t.Errorf("%v is %s in %s: outside 09:00-20:00", at, at.In(loc).Format("15:04"), loc)
			}
		}
	}
	if !strings.HasPrefix(w.Zone, "inferred from locale region US: America/New_York") || strings.Contains(w.Zone, "left out") {
		t.Errorf("Zone = %q", w.Zone)
	}
}

func TestSendWindowWithNothingKnownIsUTCAndSaysSo(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	for _, h := range []policy.ZoneHints{{}, {TimeZone: "UTC", Locale: "en"}, {Phone: "+1555", Locale: "xx-invalid-"}} {
		z := policy.CustomerZones(h)
		w := window(t, q, time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC), z)
		if localSpan(w, time.UTC) != "2026-11-30 09:00 UTC - 2026-11-30 20:00 UTC" {
			t.Errorf("%+v: window = %s, want 09:00-20:00 UTC", h, localSpan(w, time.UTC))
		}
		if !strings.Contains(w.Zone, "UTC") || !strings.Contains(w.Zone, "no valid time zone, phone number or locale region") {
			t.Errorf("%+v: Zone = %q, want it to say UTC was used because nothing is known", h, w.Zone)
		}
	}
}

func TestSendWindowForZones12HoursApartKeepsTheFirstCandidate(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	ny := mustZone(t, "America/New_York")
	// New York (-05) and Bangkok (+07) have no hour of 09:00-20:00 in common.
	w := window(t, q, time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC), zones(t, "America/New_York", "Asia/Bangkok"))
	if got := localSpan(w, ny); got != "2026-11-30 09:00 EST - 2026-11-30 20:00 EST" {
		t.Errorf("window = %s, want New York's 09:00-20:00", got)
	}
	if !strings.Contains(w.Zone, "left out, no hours in common with the others: Asia/Bangkok") {
		t.Errorf("Zone = %q, want it to name the zone left out", w.Zone)
	}
	// The other way round, Bangkok's hours are kept.
	bkk := mustZone(t, "Asia/Bangkok")
	w = window(t, q, time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC), zones(t, "Asia/Bangkok", "America/New_York"))
	if !w.Start.Equal(time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC)) || w.End.In(bkk).Format("15:04") != "20:00" {
		t.Errorf("Bangkok first: window = %s", localSpan(w, bkk))
	}
}

func TestSendWindowIsAllowedInEveryCandidateZone(t *testing.T) {
	names := []string{"America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "America/Santiago", "Europe/Berlin",
		"Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "UTC"}
	windows := [][2]string{{"09:00", "20:00"}, {"08:00", "21:00"}, {"00:00", "24:00"}, {"00:30", "01:30"}, {"12:00", "12:30"}}
	r := rand.New(rand.NewPCG(12, 3))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3000 {
		hm := windows[r.IntN(len(windows))]
		q, err := policy.ParseQuietHours(hm[0], hm[1])
		if err != nil {
			t.Fatal(err)
		}
		start, end := minutes(hm[0]), minutes(hm[1])
		var picked []string
		for range 1 + r.IntN(3) {
			picked = append(picked, names[r.IntN(len(names))])
		}
		now := base.Add(time.Duration(r.Int64N(int64(366 * 24 * time.Hour))))
		w := window(t, q, now, zones(t, picked...))
		if w.End.Sub(now) > 5*24*time.Hour {
			t.Errorf("#%d %v in %v: window ends %v, more than 5 days ahead", i, now, picked, w.End)
		}
		allowedNow := true
		for _, name := range picked {
			if strings.Contains(w.Zone, "left out") && strings.Contains(w.Zone[strings.Index(w.Zone, "left out"):], name) && name != picked[0] {
				continue
			}
			loc := mustZone(t, name)
			allowedNow = allowedNow && allowedIn(now, loc, start, end)
			for _, at := range []time.Time{w.Start, w.Start.Add(w.End.Sub(w.Start) / 2), w.End.Add(-time.Nanosecond)} {
				if !allowedIn(at, loc, start, end) {
					t.Fatalf("#%d quiet hours %s-%s, now %v, zones %v: window [%v, %v) includes %s local in %s (%q)",
						i, hm[0], hm[1], now, picked, w.Start, w.End, at.In(loc).Format("2006-01-02 15:04 MST"), name, w.Zone)
				}
			}
		}
		if allowedNow && !w.Start.Equal(now) {
			t.Errorf("#%d %v is allowed in %v, but the window starts at %v", i, now, picked, w.Start)
		}
	}
}

func minutes(hm string) int {
	if hm == "24:00" {
		return 24 * 60
	}
	t, _ := time.Parse("15:04", hm)
	return t.Hour()*60 + t.Minute()
}
