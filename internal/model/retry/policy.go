package retry

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
)

// Duration is a time.Duration written as Go writes one ("6h", "72h").
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads "6h", "30m", "720h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 6h or 30m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Limit: at most Max attempts on one card in any Window.
type Limit struct {
	Max    int      `yaml:"max"`
	Window Duration `yaml:"window"`
}

// Network is one card network's retry rules.
type Network struct {
	Name                  string   `yaml:"-"`
	NeverRetryCodes       []string `yaml:"never_retry_codes"`        // response codes after which no retry is allowed
	NeverRetryAdviceCodes []string `yaml:"never_retry_advice_codes"` // e.g. Mastercard MAC 03, 21
	Limits                []Limit  `yaml:"limits"`
}

func (n Network) limitsText() string {
	var s []string
	for _, l := range n.Limits {
		s = append(s, fmt.Sprintf("%d in %s", l.Max, l.Window.D()))
	}
	return strings.Join(s, ", ")
}

// Calendar is a country's likely paydays: the listed days of the month and, optionally, the
// last business day. A payday on a weekend moves to the business day before it. No public
// holidays are known (a simple, holiday-free calendar).
type Calendar struct {
	Days            []int `yaml:"days"`
	LastBusinessDay bool  `yaml:"last_business_day"`
}

// Policy is prompts/retry.yaml, validated.
type Policy struct {
	// Spacing per class: the wait before the 1st, 2nd, … retry (the last repeats).
	Spacing map[recoup.DeclineClass][]Duration `yaml:"spacing"`
	// PaydayHour is the local hour of a payday retry; MinGap the least wait before any
	// payday retry.
	PaydayHour int      `yaml:"payday_hour"`
	MinGap     Duration `yaml:"min_gap"`
	// MaxAttempts bounds Recoup's own advice per invoice (0: only the networks' limits);
	// Horizon is how long after the first failure a retry may still be advised.
	MaxAttempts int      `yaml:"max_attempts"`
	Horizon     Duration `yaml:"horizon"`
	// Paydays per country (ISO 3166-1 alpha-2), "default" for the rest.
	Paydays map[string]Calendar `yaml:"paydays"`
	// Networks by name; "default" applies to an unknown network.
	Networks map[string]Network `yaml:"networks"`
}

// Parse reads and validates a retry policy. Errors name the field at fault.
func Parse(b []byte) (*Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("retry policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks every field; the error lists each fault.
func (p *Policy) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("retry policy: "+f, a...)) }
	for c, s := range p.Spacing {
		if !slices.Contains(recoup.DeclineClasses, c) {
			bad("spacing: unknown decline class %q (known: %v)", c, recoup.DeclineClasses)
		}
		for i, d := range s {
			if d <= 0 {
				bad("spacing.%s[%d]: must be positive", c, i)
			}
		}
	}
	if len(p.Spacing[recoup.DeclineGenericSoft]) == 0 {
		bad("spacing.generic_soft is required (it is the fallback)")
	}
	if p.PaydayHour < 0 || p.PaydayHour > 23 {
		bad("payday_hour: %d is not an hour 0-23", p.PaydayHour)
	}
	if p.MinGap < 0 || p.MaxAttempts < 0 || p.Horizon < 0 {
		bad("min_gap, max_attempts and horizon must not be negative")
	}
	if _, ok := p.Paydays["default"]; !ok {
		bad("paydays.default is required")
	}
	for c, cal := range p.Paydays {
		if len(cal.Days) == 0 && !cal.LastBusinessDay {
			bad("paydays.%s: no days and no last_business_day", c)
		}
		for _, d := range cal.Days {
			if d < 1 || d > 31 {
				bad("paydays.%s: day %d is not 1-31", c, d)
			}
		}
	}
	if _, ok := p.Networks["default"]; !ok {
		bad("networks.default is required (it applies to an unknown network)")
	}
	for name, n := range p.Networks {
		for i, l := range n.Limits {
			if l.Max < 0 || l.Window <= 0 {
				bad("networks.%s.limits[%d]: max must be ≥ 0 and window positive", name, i)
			}
		}
	}
	return errors.Join(errs...)
}

func (p *Policy) network(name string) Network {
	n, ok := p.Networks[strings.ToLower(name)]
	if !ok || name == "" {
		n, name = p.Networks["default"], "default"
	}
	n.Name = name
	return n
}

// Payday is the first likely payday of the customer's country at PaydayHour local time
// that is not before notBefore. DST-correct: the hour is a wall-clock hour in the zone.
func (p *Policy) Payday(country, tz string, notBefore time.Time) time.Time {
	cal, ok := p.Paydays[strings.ToUpper(country)]
	if !ok {
		cal = p.Paydays["default"]
	}
	loc := zone(tz)
	local := notBefore.In(loc)
	y, m := local.Year(), local.Month()
	for i := 0; i < 3; i++ { // this month, the next, the one after
		var days []time.Time
		for _, d := range cal.Days { // a day past the month's end is its last day (31 → 28 Feb)
			d = min(d, daysIn(y, m))
			days = append(days, businessDayOnOrBefore(time.Date(y, m, d, p.PaydayHour, 0, 0, 0, loc)))
		}
		if cal.LastBusinessDay {
			days = append(days, businessDayOnOrBefore(time.Date(y, m, daysIn(y, m), p.PaydayHour, 0, 0, 0, loc)))
		}
		slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
		for _, d := range days {
			if !d.Before(notBefore) {
				return d
			}
		}
		m++
		if m > 12 {
			y, m = y+1, 1
		}
	}
	return notBefore // unreachable for a valid calendar
}

func daysIn(y int, m time.Month) int { return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day() }

// businessDayOnOrBefore moves a Saturday or Sunday to the Friday before, keeping the
// wall-clock hour.
func businessDayOnOrBefore(t time.Time) time.Time {
	switch t.Weekday() {
	case time.Saturday:
		return t.AddDate(0, 0, -1)
	case time.Sunday:
		return t.AddDate(0, 0, -2)
	}
	return t
}

// DefaultPolicy is the policy prompts/retry.yaml ships, for callers without a file (the
// shipped file is checked against it in the tests).
func DefaultPolicy() *Policy {
	h := func(d time.Duration) Duration { return Duration(d) }
	day := 24 * time.Hour
	cat1 := []string{"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3", "pickup_card", "lost_card", "stolen_card"}
	return &Policy{
		Spacing: map[recoup.DeclineClass][]Duration{
			recoup.DeclineIssuerUnavailable:   {h(time.Hour), h(6 * time.Hour), h(day)},
			recoup.DeclineGenericSoft:         {h(day), h(2 * day), h(3 * day)},
			recoup.DeclineUnknown:             {h(2 * day), h(3 * day)},
			recoup.DeclineUpdatePaymentMethod: {h(10 * time.Minute)}, recoup.DeclineAuthenticationRequired: {h(10 * time.Minute)},
		},
		PaydayHour: 9, MinGap: h(12 * time.Hour), MaxAttempts: 8, Horizon: h(30 * day),
		Paydays: map[string]Calendar{"default": {Days: []int{1, 15}, LastBusinessDay: true}},
		Networks: map[string]Network{
			"visa":       {NeverRetryCodes: cat1, Limits: []Limit{{15, h(30 * day)}}},
			"mastercard": {NeverRetryAdviceCodes: []string{"03", "21"}, Limits: []Limit{{10, h(day)}, {35, h(30 * day)}}},
			"default":    {NeverRetryCodes: cat1, NeverRetryAdviceCodes: []string{"03", "21"}, Limits: []Limit{{10, h(day)}, {15, h(30 * day)}}},
		},
	}
}
