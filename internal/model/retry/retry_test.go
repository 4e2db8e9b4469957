package retry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/retry"
	"github.com/recoup-dunning/recoup/prompts"
)

func shipped(t *testing.T) *retry.Policy {
	t.Helper()
	b, err := prompts.Default.ReadFile("retry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := retry.Parse(b)
	if err != nil {
		t.Fatalf("shipped retry.yaml: %v", err)
	}
	return p
}

var t0 = time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC) // a Wednesday

func attempts(at ...time.Time) []retry.Attempt {
	var out []retry.Attempt
	for _, a := range at {
		out = append(out, retry.Attempt{At: a, Code: "do_not_honor"})
	}
	return out
}

func TestEachClassGetsItsOwnAdvice(t *testing.T) {
	p := shipped(t)
	base := retry.Input{Network: "visa", Attempts: attempts(t0), Now: t0, TimeZone: "America/New_York", Country: "US"}
	cases := []struct {
		class recoup.DeclineClass
		retry bool
		after time.Duration
	}{
		{recoup.DeclineIssuerUnavailable, true, time.Hour},
		{recoup.DeclineGenericSoft, true, 24 * time.Hour},
		{recoup.DeclineUnknown, true, 48 * time.Hour},
		{recoup.DeclineDoNotRetry, false, 0},
		{recoup.DeclineUpdatePaymentMethod, false, 0},
		{recoup.DeclineAuthenticationRequired, false, 0},
	}
	for _, c := range cases {
		in := base
		in.Class = c.class
		a := p.Advise(in)
		if a.DoNotRetry == c.retry || a.Class != c.class || a.Reason == "" {
			t.Errorf("%s: advice %+v, want retry=%v", c.class, a, c.retry)
			continue
		}
		if c.retry && !a.RetryAt.Equal(t0.Add(c.after)) {
			t.Errorf("%s: retry at %s, want %s", c.class, a.RetryAt, t0.Add(c.after))
		}
	}
}

func TestIssuerUnavailableBacksOffWithEachFailedRetry(t *testing.T) {
	p := shipped(t)
	in := retry.Input{Class: recoup.DeclineIssuerUnavailable, Network: "visa", Attempts: attempts(t0, t0.Add(time.Hour)), Now: t0.Add(time.Hour)}
	if a := p.Advise(in); !a.RetryAt.Equal(t0.Add(7 * time.Hour)) {
		t.Fatalf("second retry at %s, want 6h after the first retry", a.RetryAt)
	}
}

func TestCustomerMustActBeforeAnAuthenticationOrCardRetry(t *testing.T) {
	p := shipped(t)
	in := retry.Input{Class: recoup.DeclineAuthenticationRequired, Attempts: attempts(t0), Now: t0}
	if a := p.Advise(in); !a.DoNotRetry || !strings.Contains(a.Reason, "authenticate") {
		t.Fatalf("without authentication: %+v", a)
	}
	in.CustomerActed = true
	if a := p.Advise(in); a.DoNotRetry || !a.RetryAt.After(t0) {
		t.Fatalf("after authentication: %+v", a)
	}
}

func TestNeverAfterACardUpdateUnlessBillingAsks(t *testing.T) {
	p := shipped(t)
	for _, c := range []recoup.DeclineClass{recoup.DeclineGenericSoft, recoup.DeclineInsufficientFunds, recoup.DeclineUpdatePaymentMethod} {
		in := retry.Input{Class: c, Attempts: attempts(t0), Now: t0, CardUpdated: true}
		if a := p.Advise(in); !a.DoNotRetry || !strings.Contains(a.Reason, "card was updated") {
			t.Errorf("%s after a card update: %+v", c, a)
		}
		in.RetryAfterCardUpdate = true
		if a := p.Advise(in); a.DoNotRetry {
			t.Errorf("%s after a card update, billing asking: %+v", c, a)
		}
	}
}

func TestNetworkNeverRetryCodes(t *testing.T) {
	p := shipped(t)
	visa := retry.Input{Class: recoup.DeclineGenericSoft, Network: "visa", Code: "43", Attempts: attempts(t0), Now: t0}
	if a := p.Advise(visa); !a.DoNotRetry || !strings.Contains(a.Reason, "visa") {
		t.Errorf("Visa category 1: %+v", a)
	}
	mc := retry.Input{Class: recoup.DeclineGenericSoft, Network: "mastercard", Code: "05", AdviceCode: "03", Attempts: attempts(t0), Now: t0}
	if a := p.Advise(mc); !a.DoNotRetry || !strings.Contains(a.Reason, "03") {
		t.Errorf("Mastercard MAC 03: %+v", a)
	}
	mc.AdviceCode = "21"
	if a := p.Advise(mc); !a.DoNotRetry {
		t.Errorf("Mastercard MAC 21: %+v", a)
	}
}

func TestBudgetExhaustion(t *testing.T) {
	p := shipped(t)
	p.MaxAttempts, p.Horizon = 0, 0
	// 15 Visa attempts in 30 days: the 16th waits until the oldest ages out.
	var as []time.Time
	for i := range 15 {
		as = append(as, t0.Add(time.Duration(i)*24*time.Hour))
	}
	now := as[14]
	in := retry.Input{Class: recoup.DeclineGenericSoft, Network: "visa", Attempts: attempts(as...), Now: now}
	a := p.Advise(in)
	if a.DoNotRetry || !a.RetryAt.After(t0.Add(30*24*time.Hour)) || a.Remaining != 1 {
		t.Fatalf("16th Visa attempt: %+v, want after %s with 1 remaining", a, t0.Add(30*24*time.Hour))
	}
	// Recoup's own cap and horizon stop it outright.
	p2 := shipped(t)
	if a := p2.Advise(in); !a.DoNotRetry || a.Remaining != 0 {
		t.Fatalf("past max_attempts: %+v", a)
	}
	// Mastercard: 10 in a day.
	var day []time.Time
	for i := range 10 {
		day = append(day, t0.Add(time.Duration(i)*time.Minute))
	}
	mc := retry.Input{Class: recoup.DeclineIssuerUnavailable, Network: "mastercard", Attempts: attempts(day...), Now: day[9]}
	if a := p.Advise(mc); a.DoNotRetry || a.RetryAt.Before(t0.Add(24*time.Hour)) {
		t.Fatalf("11th Mastercard attempt in a day: %+v", a)
	}
}

func TestInsufficientFundsWaitsForThePaydayInTheCustomersZone(t *testing.T) {
	p := shipped(t)
	cases := []struct {
		name, tz, country string
		now               time.Time
		want              string // local wall clock
	}{
		// Wed 4 Mar 2026 → Sun 15 Mar is a weekend: Fri 13 Mar 09:00.
		{"US mid-month on a weekend", "America/New_York", "US", t0, "2026-03-13 09:00 EDT"},
		{"GB last business day", "Europe/London", "GB", t0, "2026-03-31 09:00 BST"},
		{"JP 25th", "Asia/Tokyo", "JP", t0, "2026-03-25 09:00 JST"},
		// 30 Jan 12:00 in Sydney: 30 Jan 09:00 (the last business day) is past, 1 Feb is a Sunday
		// (→ 30 Jan, past), 15 Feb a Sunday → Fri 13 Feb.
		{"AU across the month", "Australia/Sydney", "AU", time.Date(2026, 1, 30, 1, 0, 0, 0, time.UTC), "2026-02-13 09:00 AEDT"},
		{"unknown country uses the default", "Asia/Kolkata", "IN", t0, "2026-03-13 09:00 IST"},
	}
	for _, c := range cases {
		in := retry.Input{Class: recoup.DeclineInsufficientFunds, Network: "visa", Attempts: attempts(c.now), Now: c.now, TimeZone: c.tz, Country: c.country}
		a := p.Advise(in)
		loc, _ := time.LoadLocation(c.tz)
		if got := a.RetryAt.In(loc).Format("2006-01-02 15:04 MST"); a.DoNotRetry || got != c.want {
			t.Errorf("%s: %s (%+v), want %s", c.name, got, a, c.want)
		}
	}
}

func TestPaydayHourIsLocalAcrossADSTChange(t *testing.T) {
	p := shipped(t)
	ny, _ := time.LoadLocation("America/New_York")
	before := p.Payday("US", "America/New_York", time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC)) // → Fri 27 Feb, EST
	after := p.Payday("US", "America/New_York", before.Add(time.Hour))                         // → Fri 13 Mar, EDT (the change is on 8 Mar)
	if before.In(ny).Hour() != 9 || after.In(ny).Hour() != 9 || before.UTC().Hour() != 14 || after.UTC().Hour() != 13 {
		t.Fatalf("paydays %s, %s: want 09:00 local on both sides of the change", before.In(ny), after.In(ny))
	}
}

func TestShippedFileMatchesTheBuiltInDefaultForWhatItShares(t *testing.T) {
	p, d := shipped(t), retry.DefaultPolicy()
	if p.PaydayHour != d.PaydayHour || p.MaxAttempts != d.MaxAttempts || len(p.Networks["mastercard"].Limits) != len(d.Networks["mastercard"].Limits) {
		t.Fatalf("prompts/retry.yaml and DefaultPolicy disagree")
	}
}

func TestBadPolicyIsRefusedNamingTheField(t *testing.T) {
	_, err := retry.Parse([]byte("spacing: {generic_soft: [1h], sometimes: [2h]}\npayday_hour: 25\npaydays: {default: {days: [32]}}\nnetworks: {default: {limits: [{max: 1, window: 0s}]}}\n"))
	for _, want := range []string{"unknown decline class \"sometimes\"", "payday_hour", "day 32", "networks.default.limits[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}

func TestNetworkOfBIN(t *testing.T) {
	for bin, want := range map[string]string{"424242": "visa", "555555": "mastercard", "222300": "mastercard", "378282": "", "": ""} {
		if got := retry.NetworkOfBIN(bin); got != want {
			t.Errorf("%q: %q, want %q", bin, got, want)
		}
	}
}
