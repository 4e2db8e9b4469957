// Package spike detects failure spikes (a gateway, BIN range, country or failure code whose
// failures rise far above their learned baseline). It is the pure, deterministic core of
// the detector workflow: no I/O, no clock, no goroutines; its state is one JSON value.
// The model: docs/PACKAGES.md.
package spike

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Dimensions a cohort can be keyed by.
const (
	DimGateway = "gateway"
	DimBIN     = "bin"
	DimCountry = "country"
	DimCode    = "code"
	DimAmount  = "amount"
)

var allDimensions = []string{DimGateway, DimBIN, DimCountry, DimCode, DimAmount}

// Record is one compact failure record: what the detector needs and no PII.
type Record struct {
	// EventID is the payment.failed event's id: a record delivered again (the relay
	// redelivers; several relays may deliver one event) counts once. Empty: not deduplicated.
	EventID      string    `json:"id,omitempty"`
	At           time.Time `json:"at"`
	Gateway      string    `json:"gateway,omitempty"`
	BIN          string    `json:"bin,omitempty"`     // first 6 digits only
	Country      string    `json:"country,omitempty"` // issuer country, ISO 3166-1 alpha-2
	Code         string    `json:"code,omitempty"`    // failure code
	AmountBucket string    `json:"amount,omitempty"`  // AmountBucket of the amount due
	// Succeeded marks a successful payment attempt (payment.succeeded): payment volume, not
	// a failure. Cohorts with volume are judged on their failure rate (see Config.Normalize).
	Succeeded bool `json:"ok,omitempty"`
}

// Value is the record's value in a dimension ("" when it has none).
func (r Record) Value(dim string) string {
	switch dim {
	case DimGateway:
		return r.Gateway
	case DimBIN:
		return r.BIN
	case DimCountry:
		return r.Country
	case DimCode:
		return r.Code
	case DimAmount:
		return r.AmountBucket
	}
	return ""
}

// AmountBucket is the order of magnitude of an amount in minor units, e.g. "1e3" for
// 1000–9999: enough to tell small from large charges, without the amount.
func AmountBucket(minor int64) string {
	if minor <= 0 {
		return ""
	}
	return fmt.Sprintf("1e%d", len(fmt.Sprint(minor))-1)
}

// Cohort names one value of one dimension, e.g. "bin=411111".
func Cohort(dim, value string) string { return dim + "=" + value }

// Config holds the thresholds and windows (the `spike:` section of prompts/policy.yaml).
type Config struct {
	Enabled    bool     `yaml:"enabled" json:"enabled"`
	Dimensions []string `yaml:"dimensions" json:"dimensions"`
	// ShortWindow is the bucket size and the first window (1m); LongWindow the second (15m).
	ShortWindow time.Duration `yaml:"short_window" json:"short_window"`
	LongWindow  time.Duration `yaml:"long_window" json:"long_window"`
	// BaselineHalfLife is how fast the baseline forgets (EWMA half-life).
	BaselineHalfLife time.Duration `yaml:"baseline_half_life" json:"baseline_half_life"`
	// Warmup is how much stream time the detector learns before it flags anything.
	Warmup time.Duration `yaml:"warmup" json:"warmup"`
	// A window is anomalous when all of these hold.
	MinCount int     `yaml:"min_count" json:"min_count"`
	MinRatio float64 `yaml:"min_ratio" json:"min_ratio"`
	PValue   float64 `yaml:"p_value" json:"p_value"`
	MinZ     float64 `yaml:"min_z" json:"min_z"`
	// FloorPerMinute is the smallest expected rate of any cohort (a cohort never seen
	// still has some chance of failing).
	FloorPerMinute float64 `yaml:"floor_per_minute" json:"floor_per_minute"`
	// ClearAfter is how long a cohort must look normal before its incident clears.
	ClearAfter time.Duration `yaml:"clear_after" json:"clear_after"`
	// MaxHold is the longest a run holds its first message for an incident; after it the
	// run continues even if the incident is still open.
	MaxHold time.Duration `yaml:"max_hold" json:"max_hold"`
	// MaxCohorts bounds memory: the least recently seen cohorts are forgotten beyond it.
	MaxCohorts int `yaml:"max_cohorts" json:"max_cohorts"`
	// DominantShare: a cohort that usually carries at least this share of all failures (the
	// only gateway of a single-gateway merchant) cannot be judged by its share, the rest of
	// the traffic being too small to compare with: without payment volume it is not flagged.
	DominantShare float64 `yaml:"dominant_share" json:"dominant_share"`
	// PlannedRuns are the billing runs operators declare (renewals on the 1st, a weekly
	// batch): while one is in progress, no cohort is flagged on its failure count alone.
	PlannedRuns []PlannedRun `yaml:"planned_runs" json:"planned_runs,omitempty"`
	// Normalize judges each cohort against the rest of the traffic instead of its own count
	// alone: by its failure rate where payment volume is reported, otherwise by its share
	// of all failures, so that a traffic-wide rise (renewal day) is not an outage. Set by
	// the detector workflow (a versioned change), not by the policy.
	Normalize bool `yaml:"-" json:"normalize,omitempty"`
}

// PlannedRun is a recurring billing run: on the given days of the month (1–31) or weekdays
// (sunday … saturday), from Start (HH:MM in TimeZone, default UTC) for Duration.
type PlannedRun struct {
	DaysOfMonth []int         `yaml:"days_of_month" json:"days_of_month,omitempty"`
	Weekdays    []string      `yaml:"weekdays" json:"weekdays,omitempty"`
	Start       string        `yaml:"start" json:"start"`
	Duration    time.Duration `yaml:"duration" json:"duration"`
	TimeZone    string        `yaml:"time_zone" json:"time_zone,omitempty"`
}

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// check says what is wrong with the run (i is its index under planned_runs).
func (p PlannedRun) check(i int) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("spike.planned_runs[%d].%s", i, fmt.Sprintf(format, a...)))
	}
	if len(p.DaysOfMonth) == 0 && len(p.Weekdays) == 0 {
		bad("days_of_month / weekdays: give at least one day")
	}
	for _, d := range p.DaysOfMonth {
		if d < 1 || d > 31 {
			bad("days_of_month: %d is not a day of the month (1–31)", d)
		}
	}
	for _, w := range p.Weekdays {
		if !slices.Contains(weekdays, strings.ToLower(w)) {
			bad("weekdays: %q is not one of %s", w, strings.Join(weekdays, ", "))
		}
	}
	if _, err := time.Parse("15:04", p.Start); err != nil {
		bad("start: %q is not a time of day like 00:00", p.Start)
	}
	if p.Duration <= 0 || p.Duration > 24*time.Hour {
		bad("duration: %s must be more than 0 and at most 24h", p.Duration)
	}
	if _, err := time.LoadLocation(p.TimeZone); err != nil {
		bad("time_zone: %q is not an IANA time zone", p.TimeZone)
	}
	return errs
}

// covers reports whether the run is in progress at t (a run that starts on a listed day and
// lasts past midnight covers the next day's first hours too).
func (p PlannedRun) covers(t time.Time) bool {
	loc, err := time.LoadLocation(p.TimeZone)
	start, perr := time.Parse("15:04", p.Start)
	if err != nil || perr != nil {
		return false
	}
	t = t.In(loc)
	for back := 0; back <= 1; back++ {
		day := t.AddDate(0, 0, -back)
		from := time.Date(day.Year(), day.Month(), day.Day(), start.Hour(), start.Minute(), 0, 0, loc)
		if t.Before(from) || !t.Before(from.Add(p.Duration)) {
			continue
		}
		if slices.Contains(p.DaysOfMonth, day.Day()) ||
			slices.ContainsFunc(p.Weekdays, func(w string) bool { return strings.EqualFold(w, weekdays[day.Weekday()]) }) {
			return true
		}
	}
	return false
}

// planned reports whether a declared billing run is in progress at t.
func (c Config) planned(t time.Time) bool {
	return slices.ContainsFunc(c.PlannedRuns, func(p PlannedRun) bool { return p.covers(t) })
}

// LiveWithin is how recently the detector must have evaluated an incident for the incident
// to hold new runs: five short windows (the detector evaluates every short window), at
// least five minutes. An incident no live detector maintains stops holding new runs.
func (c Config) LiveWithin() time.Duration {
	return max(5*time.Minute, 5*c.ShortWindow)
}

// DefaultConfig is the configuration when the policy file has no `spike:` section.
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		Dimensions:       []string{DimGateway, DimBIN, DimCountry, DimCode},
		ShortWindow:      time.Minute,
		LongWindow:       15 * time.Minute,
		BaselineHalfLife: time.Hour,
		Warmup:           30 * time.Minute,
		MinCount:         12,
		MinRatio:         3,
		PValue:           1e-10,
		MinZ:             4,
		FloorPerMinute:   0.2,
		ClearAfter:       10 * time.Minute,
		MaxHold:          24 * time.Hour,
		MaxCohorts:       5000,
		DominantShare:    0.8,
	}
}

// WithDefaults fills the fields left zero with DefaultConfig's.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Dimensions == nil {
		c.Dimensions = d.Dimensions
	}
	durs := []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.ShortWindow, d.ShortWindow}, {&c.LongWindow, d.LongWindow}, {&c.BaselineHalfLife, d.BaselineHalfLife},
		{&c.Warmup, d.Warmup}, {&c.ClearAfter, d.ClearAfter}, {&c.MaxHold, d.MaxHold},
	}
	for _, x := range durs {
		if *x.v == 0 {
			*x.v = x.d
		}
	}
	if c.MinCount == 0 {
		c.MinCount = d.MinCount
	}
	if c.MinRatio == 0 {
		c.MinRatio = d.MinRatio
	}
	if c.PValue == 0 {
		c.PValue = d.PValue
	}
	if c.MinZ == 0 {
		c.MinZ = d.MinZ
	}
	if c.FloorPerMinute == 0 {
		c.FloorPerMinute = d.FloorPerMinute
	}
	if c.MaxCohorts == 0 {
		c.MaxCohorts = d.MaxCohorts
	}
	if c.DominantShare == 0 {
		c.DominantShare = d.DominantShare
	}
	return c
}

// Validate says everything wrong with c, each problem naming its key under `spike:`.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("spike."+format, a...)) }
	if len(c.Dimensions) == 0 {
		bad("dimensions: at least one of %s", strings.Join(allDimensions, ", "))
	}
	for _, d := range c.Dimensions {
		if !slices.Contains(allDimensions, d) {
			bad("dimensions: %q is not one of %s", d, strings.Join(allDimensions, ", "))
		}
	}
	if c.ShortWindow < time.Minute || c.ShortWindow%time.Minute != 0 {
		bad("short_window: %s must be a whole number of minutes, at least 1m", c.ShortWindow)
	}
	if c.ShortWindow > 0 && (c.LongWindow <= c.ShortWindow || c.LongWindow%c.ShortWindow != 0 || c.LongWindow > 6*time.Hour) {
		bad("long_window: %s must be a multiple of short_window (%s), longer than it and at most 6h", c.LongWindow, c.ShortWindow)
	}
	if c.BaselineHalfLife < c.LongWindow {
		bad("baseline_half_life: %s must be at least long_window (%s)", c.BaselineHalfLife, c.LongWindow)
	}
	if c.Warmup < 0 {
		bad("warmup: %s must not be negative", c.Warmup)
	}
	if c.MinCount < 1 {
		bad("min_count: %d must be at least 1", c.MinCount)
	}
	if c.MinRatio <= 1 {
		bad("min_ratio: %g must be greater than 1", c.MinRatio)
	}
	if c.PValue <= 0 || c.PValue >= 0.5 {
		bad("p_value: %g must be between 0 and 0.5", c.PValue)
	}
	if c.MinZ < 0 {
		bad("min_z: %g must not be negative", c.MinZ)
	}
	if c.FloorPerMinute <= 0 {
		bad("floor_per_minute: %g must be greater than 0", c.FloorPerMinute)
	}
	if c.ClearAfter < c.ShortWindow {
		bad("clear_after: %s must be at least short_window (%s)", c.ClearAfter, c.ShortWindow)
	}
	if c.MaxHold < time.Minute {
		bad("max_hold: %s must be at least 1m", c.MaxHold)
	}
	if c.MaxCohorts < 10 || c.MaxCohorts > 100000 {
		bad("max_cohorts: %d must be between 10 and 100000", c.MaxCohorts)
	}
	if c.DominantShare <= 0 || c.DominantShare > 1 {
		bad("dominant_share: %g must be more than 0 and at most 1", c.DominantShare)
	}
	for i, p := range c.PlannedRuns {
		errs = append(errs, p.check(i)...)
	}
	return errors.Join(errs...)
}

// Incident statuses.
const (
	Open         = "open"
	Acknowledged = "acknowledged" // an operator saw it; still holding
	Cleared      = "cleared"      // the rate returned to baseline
	Released     = "released"     // an operator released the holds; still watched
	FalseAlarm   = "false_alarm"  // an operator said it was not an outage
)

// Holding reports whether runs in an incident with this status hold their first message.
func Holding(status string) bool { return status == Open || status == Acknowledged }

// Active reports whether an incident with this status is still attributed failures.
func Active(status string) bool {
	return status == Open || status == Acknowledged || status == Released
}

// Evidence is why a cohort was flagged: observed against expected in one window.
type Evidence struct {
	Window   time.Duration `json:"window"`
	Observed int           `json:"observed"`
	Expected float64       `json:"expected"`
	Ratio    float64       `json:"ratio"`
	PValue   float64       `json:"p_value"`
	Z        float64       `json:"z"`
	// Basis is what Expected was judged on (with Config.Normalize): "rate" (the cohort's
	// usual failure rate times its attempts now), "share" (its usual share of all failures
	// times the rest of the traffic's rise), "count" (its usual count; the rest of the
	// traffic too small to compare with), "dominant" (a cohort with nearly all failures and
	// no volume: not judged). Empty: counts, as before Normalize.
	Basis string `json:"basis,omitempty"`
}

func (e Evidence) String() string {
	s := fmt.Sprintf("%d failures in %s, expected %.1f (%.0fx, p=%.1e)", e.Observed, e.Window, e.Expected, e.Ratio, e.PValue)
	if e.Basis != "" {
		s += " by " + e.Basis
	}
	return s
}

// Incident is one flagged cohort.
type Incident struct {
	ID         string    `json:"id"`
	Cohort     string    `json:"cohort"`
	Dimension  string    `json:"dimension"`
	Value      string    `json:"value"`
	Status     string    `json:"status"`
	Severity   string    `json:"severity"` // minor | major | critical
	OpenedAt   time.Time `json:"opened_at"`
	OnsetAt    time.Time `json:"onset_at"` // start of the first anomalous minute
	ClearedAt  time.Time `json:"cleared_at,omitzero"`
	Evidence   Evidence  `json:"evidence"` // when flagged
	Peak       Evidence  `json:"peak"`     // the worst minute since
	Failures   int       `json:"failures"` // attributed to the incident while it was active
	NormalFrom time.Time `json:"normal_from,omitzero"`
	Note       string    `json:"note,omitempty"` // who acknowledged, released or marked it, and why
}

func severity(ratio float64) string {
	switch {
	case ratio >= 20:
		return "critical"
	case ratio >= 8:
		return "major"
	}
	return "minor"
}

// cohort is the per-cohort state.
type cohort struct {
	Key      string    `json:"k"`
	Counts   []int     `json:"c"` // per bucket, newest last; len = long window / short window
	Mean     float64   `json:"m"` // EWMA of the per-bucket count (not bias-corrected)
	Var      float64   `json:"v"`
	LastSeen time.Time `json:"s"`
	// Floor is the least count per bucket to expect while the cohort's incident, recovered
	// from a lost detector (whose baseline was lost with it), is active.
	Floor float64 `json:"f,omitempty"`
	// Attempts counts payment attempts per bucket (failures and successes), newest last,
	// and AMean is its EWMA: the cohort's payment volume (Config.Normalize).
	Attempts []int   `json:"a,omitempty"`
	AMean    float64 `json:"am,omitempty"`
	// Share is the EWMA of the cohort's share of all failures per bucket, learned only while
	// no incident is active (Config.Normalize).
	Share float64 `json:"sh,omitempty"`
}

// State is the detector's whole state.
type State struct {
	Config    Config     `json:"config"`
	Started   time.Time  `json:"started"` // start of the first bucket
	Bucket    time.Time  `json:"bucket"`  // start of the current bucket
	Buckets   int        `json:"buckets"` // closed buckets learned since Started
	Cohorts   []*cohort  `json:"cohorts"` // sorted by key
	Incidents []Incident `json:"incidents"`
	NextID    int        `json:"next_id"`
	Late      int        `json:"late"` // records older than the long window, ignored
	// Seen holds the event ids of the records counted recently; Duplicates counts the
	// records not counted again because their event id was seen.
	Seen       seenWindow `json:"seen,omitzero"`
	Duplicates int        `json:"duplicates,omitempty"`
	// Total is every record's failures and attempts, as one cohort (Config.Normalize);
	// VolumeAt is the time of the newest success record (payment volume reported).
	Total    *cohort   `json:"total,omitempty"`
	VolumeAt time.Time `json:"volume_at,omitzero"`
}

// Mode says how the detector judges cohorts now: "counts" (each cohort against its own
// usual count), "rates" (payment volume is reported: failure rates) or "shares" (no volume:
// each cohort's share of all failures; a cohort with nearly all of them is not judged).
func (d *Detector) Mode(now time.Time) string {
	switch {
	case !d.S.Config.Normalize:
		return "counts"
	case !d.S.VolumeAt.IsZero() && now.Sub(d.S.VolumeAt) < d.S.Config.LongWindow:
		return "rates"
	}
	return "shares"
}

// Event is something the caller must act on (alert, record, release holds).
type Event struct {
	Kind     string   `json:"kind"` // opened | escalated | cleared
	Incident Incident `json:"incident"`
}

// Detector runs the model over a State.
type Detector struct {
	S     *State
	alpha float64
	n     int // buckets per long window
}

// New returns a detector over s (a zero State starts fresh with cfg).
func New(s *State, cfg Config) *Detector {
	cfg = cfg.WithDefaults()
	s.Config = cfg
	n := int(cfg.LongWindow / cfg.ShortWindow)
	for _, c := range s.Cohorts {
		c.Counts = resize(c.Counts, n)
		if c.Attempts != nil || cfg.Normalize {
			c.Attempts = resize(c.Attempts, n)
		}
	}
	if cfg.Normalize {
		if s.Total == nil {
			s.Total = &cohort{Key: "*"}
		}
		s.Total.Counts, s.Total.Attempts = resize(s.Total.Counts, n), resize(s.Total.Attempts, n)
	}
	halfLife := float64(cfg.BaselineHalfLife) / float64(cfg.ShortWindow)
	return &Detector{S: s, alpha: 1 - math.Exp(-math.Ln2/halfLife), n: n}
}

func resize(c []int, n int) []int {
	switch {
	case len(c) == n:
		return c
	case len(c) > n:
		return c[len(c)-n:]
	}
	return append(make([]int, n-len(c)), c...)
}

func (d *Detector) cohort(key string, create bool) *cohort {
	i, ok := slices.BinarySearchFunc(d.S.Cohorts, key, func(c *cohort, k string) int { return strings.Compare(c.Key, k) })
	if ok {
		return d.S.Cohorts[i]
	}
	if !create {
		return nil
	}
	c := &cohort{Key: key, Counts: make([]int, d.n)}
	if d.S.Config.Normalize {
		c.Attempts = make([]int, d.n)
	}
	d.S.Cohorts = slices.Insert(d.S.Cohorts, i, c)
	return c
}

// Advance moves stream time to now, closing every bucket before it: baselines learn, and
// incidents whose cohort looked normal for ClearAfter clear.
func (d *Detector) Advance(now time.Time) []Event {
	b := now.Truncate(d.S.Config.ShortWindow)
	if d.S.Started.IsZero() {
		d.S.Started, d.S.Bucket = b, b
		return nil
	}
	var out []Event
	defer func() { d.S.Seen.expire(d.S.Bucket.Add(-time.Duration(d.n-1) * d.S.Config.ShortWindow)) }()
	for d.S.Bucket.Before(b) {
		out = append(out, d.closeBucket()...)
		// A long silence needs no bucket-by-bucket walk beyond what the baseline can feel;
		// the last buckets are walked so incidents can clear.
		cfg := d.S.Config
		if walk := cfg.ClearAfter + cfg.LongWindow; b.Sub(d.S.Bucket) > 4*cfg.BaselineHalfLife+walk {
			skip := b.Sub(d.S.Bucket) - walk
			d.decayIdle(int(skip / cfg.ShortWindow))
			d.S.Bucket = d.S.Bucket.Add(skip)
		}
	}
	return out
}

// decayIdle applies k empty buckets to every baseline at once.
func (d *Detector) decayIdle(k int) {
	f := math.Pow(1-d.alpha, float64(k))
	for _, c := range d.cohortsAndTotal() {
		c.Mean *= f
		c.Var *= f
		c.AMean *= f
		clear(c.Counts)
		clear(c.Attempts)
	}
	d.S.Buckets += k
}

// cohortsAndTotal is every cohort, and the total when there is one.
func (d *Detector) cohortsAndTotal() []*cohort {
	if d.S.Total == nil {
		return d.S.Cohorts
	}
	return append(slices.Clip(d.S.Cohorts), d.S.Total)
}

// learn moves c's baselines by the bucket that just closed.
func (d *Detector) learn(c *cohort) {
	x := float64(c.Counts[d.n-1])
	diff := x - c.Mean
	c.Mean += d.alpha * diff
	c.Var = (1 - d.alpha) * (c.Var + d.alpha*diff*diff)
	if c.Attempts != nil {
		c.AMean += d.alpha * (float64(c.Attempts[d.n-1]) - c.AMean)
	}
}

// shift starts a new bucket for c.
func (d *Detector) shift(c *cohort) {
	copy(c.Counts, c.Counts[1:])
	c.Counts[d.n-1] = 0
	if c.Attempts != nil {
		copy(c.Attempts, c.Attempts[1:])
		c.Attempts[d.n-1] = 0
	}
}

func (d *Detector) closeBucket() []Event {
	var out []Event
	if t := d.S.Total; t != nil {
		d.learn(t)
		defer d.shift(t)
		if n := t.Counts[d.n-1]; n > 0 && !slices.ContainsFunc(d.S.Incidents, func(in Incident) bool { return Active(in.Status) }) {
			for _, c := range d.S.Cohorts {
				c.Share += d.alpha * (float64(c.Counts[d.n-1])/float64(n) - c.Share)
			}
		}
	}
	for _, c := range d.S.Cohorts {
		x := float64(c.Counts[d.n-1])
		inc := d.activeIncident(c.Key)
		if inc == nil {
			// Learn only from buckets that are not part of an incident.
			d.learn(c)
		} else {
			exp := d.expected(c, 1)
			if d.S.Config.Normalize {
				exp = d.evidence(c, 1).Expected
			}
			if tail(int(x), exp) >= 0.01 || x <= exp {
				if inc.NormalFrom.IsZero() {
					inc.NormalFrom = d.S.Bucket
				}
				if d.S.Bucket.Add(d.S.Config.ShortWindow).Sub(inc.NormalFrom) >= d.S.Config.ClearAfter {
					inc.Status = Cleared
					inc.ClearedAt = d.S.Bucket.Add(d.S.Config.ShortWindow)
					d.settle(c)
					// The incident's buckets are accounted for; they must not flag it again.
					clear(c.Counts)
					out = append(out, Event{Kind: "cleared", Incident: *inc})
				}
			} else {
				inc.NormalFrom = time.Time{}
				if ev := d.evidence(c, 1); ev.Ratio > inc.Peak.Ratio {
					inc.Peak = ev
					if s := severity(ev.Ratio); s != inc.Severity && rank(s) > rank(inc.Severity) {
						inc.Severity = s
						out = append(out, Event{Kind: "escalated", Incident: *inc})
					}
				}
			}
		}
		d.shift(c)
	}
	d.S.Buckets++
	d.S.Bucket = d.S.Bucket.Add(d.S.Config.ShortWindow)
	d.evict()
	d.trimIncidents()
	return out
}

func rank(sev string) int { return map[string]int{"minor": 1, "major": 2, "critical": 3}[sev] }

// evict forgets the least recently seen cohorts beyond MaxCohorts (never one with an
// active incident).
func (d *Detector) evict() {
	over := len(d.S.Cohorts) - d.S.Config.MaxCohorts
	if over <= 0 {
		return
	}
	byAge := slices.Clone(d.S.Cohorts)
	slices.SortStableFunc(byAge, func(a, b *cohort) int { return a.LastSeen.Compare(b.LastSeen) })
	drop := map[string]bool{}
	for _, c := range byAge {
		if len(drop) == over {
			break
		}
		if d.activeIncident(c.Key) == nil {
			drop[c.Key] = true
		}
	}
	d.S.Cohorts = slices.DeleteFunc(d.S.Cohorts, func(c *cohort) bool { return drop[c.Key] })
}

// trimIncidents keeps the active incidents and the 50 most recent ended ones.
func (d *Detector) trimIncidents() {
	ended := 0
	for i := len(d.S.Incidents) - 1; i >= 0; i-- {
		if !Active(d.S.Incidents[i].Status) {
			ended++
			if ended > 50 {
				d.S.Incidents = slices.Delete(d.S.Incidents, i, i+1)
			}
		}
	}
}

func (d *Detector) activeIncident(key string) *Incident {
	for i := range d.S.Incidents {
		if in := &d.S.Incidents[i]; in.Cohort == key && Active(in.Status) {
			return in
		}
	}
	return nil
}

// Incident returns the incident with this id.
func (d *Detector) Incident(id string) *Incident {
	for i := range d.S.Incidents {
		if d.S.Incidents[i].ID == id {
			return &d.S.Incidents[i]
		}
	}
	return nil
}

// expected is the expected count of c over the last buckets buckets.
func (d *Detector) expected(c *cohort, buckets int) float64 {
	mean := c.Mean
	if d.S.Buckets > 0 {
		mean /= 1 - math.Pow(1-d.alpha, float64(d.S.Buckets)) // bias correction
	}
	return max(mean, d.S.Config.FloorPerMinute*d.S.Config.ShortWindow.Minutes(), c.Floor) * float64(buckets)
}

// sum adds the last buckets entries of xs.
func sum(xs []int, buckets int) int {
	n := 0
	for _, x := range xs[len(xs)-buckets:] {
		n += x
	}
	return n
}

// corrected is an EWMA without its start-up bias.
func (d *Detector) corrected(mean float64) float64 {
	if d.S.Buckets > 0 {
		mean /= 1 - math.Pow(1-d.alpha, float64(d.S.Buckets))
	}
	return mean
}

func (d *Detector) evidence(c *cohort, buckets int) Evidence {
	obs := sum(c.Counts, buckets)
	exp := d.expected(c, buckets)
	variance := d.corrected(c.Var)
	basis := ""
	if d.S.Config.Normalize && c != d.S.Total {
		exp, basis = d.normalized(c, buckets, exp)
	}
	sd := math.Sqrt(max(variance, exp/float64(buckets)) * float64(buckets))
	pValue := tail(obs, exp)
	switch basis {
	case "rate", "share":
		// The cohort's own variance mostly measures how the whole traffic moved, which the
		// normalisation took out: Poisson noise around the expectation, plus 10% for the
		// uncertainty of the usual rate or share.
		sd = math.Sqrt(exp + 0.01*exp*exp)
	}
	if basis == "share" {
		// Of the records in this very window (a minute in progress included), how likely
		// is it that this many fell in the cohort, given its usual share: the test does not
		// depend on how far into the minute the stream is, nor on the traffic's level.
		t := d.S.Total
		share := d.corrected(c.Mean) / d.corrected(t.Mean)
		pValue = max(pValue, binomTail(obs, sum(t.Counts, buckets), share))
	}
	return Evidence{Window: time.Duration(buckets) * d.S.Config.ShortWindow, Observed: obs, Expected: exp,
		Ratio: float64(obs) / exp, PValue: pValue, Z: (float64(obs) - exp) / sd, Basis: basis}
}

// normalized is the count c is expected to have over the last buckets when the rest of the
// traffic is taken into account (Config.Normalize), and the basis:
//   - rate: c has payment volume (attempts in the window, successes reported): its usual
//     failure rate times its attempts now. A renewal burst raises attempts and failures
//     alike; an outage raises failures alone.
//   - share: no volume, c is a minority of the failures: its usual count times the rise of
//     the rest of the traffic (never less than usual), so every cohort rising together is
//     not anomalous and one rising out of proportion is. (Traffic moving to a cohort never
//     seen before looks like its outage: only volume tells them apart.)
//   - dominant: c usually carries nearly all failures and has no volume: its share cannot
//     tell an outage from a busy day, so it is not judged (Expected is +Inf).
//   - count: the rest of the traffic is too small to compare with: its usual count.
func (d *Detector) normalized(c *cohort, buckets int, usual float64) (float64, string) {
	cfg := d.S.Config
	floor := usual / float64(buckets) // the floored count per bucket
	t := d.S.Total
	if attempts := sum(c.Attempts, buckets); attempts >= cfg.MinCount && d.Mode(d.S.Bucket) == "rates" {
		rate := t.Mean / max(t.AMean, 1) // a cohort with no volume learned yet: the traffic's rate
		if c.AMean > 0 {
			rate = c.Mean / c.AMean
		}
		exp := max(min(1, rate)*float64(attempts), floor*float64(buckets))
		return exp, "rate"
	}
	if d.corrected(c.Share) >= cfg.DominantShare {
		return math.Inf(1), "dominant"
	}
	rest := max(0, d.corrected(t.Mean)-d.corrected(c.Mean)) // the rest's usual count per bucket
	if rest*float64(d.n) < float64(cfg.MinCount) {
		return usual, "count" // too little other traffic to compare with
	}
	restObs := float64(sum(t.Counts, buckets) - sum(c.Counts, buckets))
	// +1 on both sides: a window with little traffic does not swing the factor.
	scale := max(1, (restObs+1)/(rest*float64(buckets)+1))
	return usual * scale, "share"
}

func (d *Detector) anomalous(e Evidence, at time.Time) bool {
	cfg := d.S.Config
	if (e.Basis == "" || e.Basis == "count") && cfg.planned(at) {
		return false // a declared billing run: counts alone say nothing
	}
	return e.Observed >= cfg.MinCount && e.Ratio >= cfg.MinRatio && e.Z >= cfg.MinZ && e.PValue < cfg.PValue
}

// Observe counts one failure (advancing stream time to it) and returns what happened.
// Records are attributed to the active incidents they match; otherwise they count for
// every cohort of theirs and may flag one (the most anomalous, so one outage opens one
// incident, not one per dimension it shows up in).
func (d *Detector) Observe(r Record) []Event {
	out := d.Advance(r.At)
	cfg := d.S.Config
	b := r.At.Truncate(cfg.ShortWindow)
	age := int(d.S.Bucket.Sub(b) / cfg.ShortWindow)
	if age >= d.n {
		d.S.Late++
		return out
	}
	if r.Succeeded && !cfg.Normalize {
		return out // payment volume is used only by the normalised model
	}
	if r.EventID != "" {
		if !d.S.Seen.add(r.EventID, b) {
			d.S.Duplicates++
			return out
		}
	}
	var keys []string
	for _, dim := range cfg.Dimensions {
		if v := r.Value(dim); v != "" {
			keys = append(keys, Cohort(dim, v))
		}
	}
	if cfg.Normalize {
		t := d.S.Total
		t.Attempts[d.n-1-age]++
		for _, k := range keys {
			d.cohort(k, true).Attempts[d.n-1-age]++
		}
		if r.Succeeded {
			if r.At.After(d.S.VolumeAt) {
				d.S.VolumeAt = r.At
			}
			return out
		}
		t.Counts[d.n-1-age]++
	}
	var matched []*Incident
	for _, k := range keys {
		if in := d.activeIncident(k); in != nil {
			matched = append(matched, in)
		}
	}
	if len(matched) > 0 {
		for _, in := range matched {
			in.Failures++
			c := d.cohort(in.Cohort, true)
			c.Counts[d.n-1-age]++
			if r.At.After(c.LastSeen) {
				c.LastSeen = r.At
			}
		}
		return out
	}
	var best *cohort
	var bestEv Evidence
	for _, k := range keys {
		c := d.cohort(k, true)
		c.Counts[d.n-1-age]++
		if r.At.After(c.LastSeen) {
			c.LastSeen = r.At
		}
		if d.S.Bucket.Sub(d.S.Started) < cfg.Warmup {
			continue
		}
		for _, w := range []int{1, 2, d.n} { // the current bucket, the last two (a sliding short window), the long window
			if ev := d.evidence(c, w); d.anomalous(ev, r.At) && (best == nil || ev.Ratio > bestEv.Ratio) {
				best, bestEv = c, ev
			}
		}
	}
	if best == nil {
		return out
	}
	// The record's other cohorts rose with the same failures: their excess so far is this
	// incident's, so it must not flag them a moment later.
	for _, k := range keys {
		if c := d.cohort(k, false); c != best {
			ceil := int(math.Ceil(d.expected(c, 1)))
			for i, x := range c.Counts {
				c.Counts[i] = min(x, ceil)
			}
		}
	}
	d.S.NextID++
	dim, val, _ := strings.Cut(best.Key, "=")
	onset := d.S.Bucket
	for i := d.n - 1; i > 0 && best.Counts[i-1] > 0 && float64(best.Counts[i-1]) >= cfg.MinRatio*d.expected(best, 1); i-- {
		onset = onset.Add(-cfg.ShortWindow)
	}
	in := Incident{ID: fmt.Sprintf("inc-%s-%d", d.S.Started.UTC().Format("20060102T1504"), d.S.NextID),
		Cohort: best.Key, Dimension: dim, Value: val, Status: Open, Severity: severity(bestEv.Ratio),
		OpenedAt: r.At, OnsetAt: onset, Evidence: bestEv, Peak: bestEv, Failures: 1}
	d.S.Incidents = append(d.S.Incidents, in)
	return append(out, Event{Kind: "opened", Incident: in})
}

// CheckAct says why an operator's action cannot apply to an incident (nil if it can). It
// changes nothing, so it can validate an update.
func (d *Detector) CheckAct(id, action string) error {
	in := d.Incident(id)
	if in == nil {
		return fmt.Errorf("no incident %q (see `starter incidents`)", id)
	}
	switch action {
	case "acknowledge":
		if in.Status != Open {
			return fmt.Errorf("incident %s is %s; only an open incident can be acknowledged", id, in.Status)
		}
	case "release":
		if !Holding(in.Status) {
			return fmt.Errorf("incident %s is %s and holds nothing", id, in.Status)
		}
	case "false_alarm":
		if !Active(in.Status) {
			return fmt.Errorf("incident %s already ended (%s)", id, in.Status)
		}
	default:
		return fmt.Errorf("unknown action %q: acknowledge, release or false_alarm", action)
	}
	return nil
}

// Act applies an operator's action (acknowledge, release, false_alarm) to an incident.
func (d *Detector) Act(id, action, note string) (Incident, error) {
	in, err := d.Acted(id, action, note)
	if err != nil {
		return Incident{}, err
	}
	return in, d.Apply(in)
}

// Acted returns the incident as an operator's action would leave it, changing nothing: the
// caller stores it, then applies it with Apply, so the state never runs ahead of the store.
func (d *Detector) Acted(id, action, note string) (Incident, error) {
	if err := d.CheckAct(id, action); err != nil {
		return Incident{}, err
	}
	in := *d.Incident(id)
	in.Status = map[string]string{"acknowledge": Acknowledged, "release": Released, "false_alarm": FalseAlarm}[action]
	if note != "" {
		if in.Note != "" {
			in.Note += "; "
		}
		in.Note += action + ": " + note
	}
	return in, nil
}

// Apply sets an incident's status and note to in's (what Acted returned, once stored).
func (d *Detector) Apply(in Incident) error {
	cur := d.Incident(in.ID)
	if cur == nil {
		return fmt.Errorf("no incident %q", in.ID)
	}
	cur.Status, cur.Note = in.Status, in.Note
	if !Active(cur.Status) {
		d.settle(d.cohort(cur.Cohort, false))
	}
	return nil
}

// Recover adds the active incidents a lost detector left (read back from the store) to the
// state, so this detector keeps attributing their failures, clears them and releases their
// runs. Their cohorts' baselines were lost with the old detector: until an incident ends,
// its cohort expects at least what the incident's evidence expected. lastID is the highest
// incident number already used, so new incidents get ids of their own.
func (d *Detector) Recover(incs []Incident, lastID int) {
	d.S.NextID = max(d.S.NextID, lastID)
	for _, in := range incs {
		if !Active(in.Status) || d.Incident(in.ID) != nil || d.activeIncident(in.Cohort) != nil {
			continue
		}
		in.NormalFrom = time.Time{}
		d.S.Incidents = append(d.S.Incidents, in)
		c := d.cohort(in.Cohort, true)
		if w := in.Evidence.Window; w > 0 {
			c.Floor = max(c.Floor, in.Evidence.Expected*float64(d.S.Config.ShortWindow)/float64(w))
		}
	}
}

// settle turns a recovered cohort's floor into its baseline once its incident ended.
func (d *Detector) settle(c *cohort) {
	if c == nil || c.Floor == 0 {
		return
	}
	m := c.Floor
	if d.S.Buckets > 0 {
		m *= 1 - math.Pow(1-d.alpha, float64(d.S.Buckets)) // undo expected's bias correction
	}
	c.Mean, c.Var, c.Floor = max(c.Mean, m), max(c.Var, m), 0
}

// tail is P(X ≥ k) for X ~ Poisson(lambda), accurate far into the tail.
func tail(k int, lambda float64) float64 {
	if k <= 0 {
		return 1
	}
	if float64(k) <= lambda {
		return 1 // not in the upper tail; never anomalous
	}
	// Sum pmf(i) for i ≥ k; terms fall geometrically once i > lambda.
	lg, _ := math.Lgamma(float64(k) + 1)
	term := math.Exp(float64(k)*math.Log(lambda) - lambda - lg)
	sum := 0.0
	for i := k; i < k+10000; i++ {
		sum += term
		if term < sum*1e-12 {
			break
		}
		term *= lambda / float64(i+1)
	}
	return min(sum, 1)
}

// binomTail is P(X ≥ k) for X ~ Binomial(n, p): how likely k or more of n records fall in a
// cohort whose usual share is p.
func binomTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n || p <= 0:
		return 0
	case p >= 1 || float64(k) <= float64(n)*p:
		return 1 // not in the upper tail; never anomalous
	}
	lgn, _ := math.Lgamma(float64(n) + 1)
	lgk, _ := math.Lgamma(float64(k) + 1)
	lgnk, _ := math.Lgamma(float64(n-k) + 1)
	term := math.Exp(lgn - lgk - lgnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	sum := 0.0
	for i := k; i <= n && i < k+10000; i++ {
		sum += term
		if term < sum*1e-12 {
			break
		}
		term *= float64(n-i) / float64(i+1) * p / (1 - p)
	}
	return min(sum, 1)
}

// SortIncidents orders incidents newest first.
func SortIncidents(in []Incident) {
	slices.SortStableFunc(in, func(a, b Incident) int { return cmp.Compare(b.OpenedAt.UnixNano(), a.OpenedAt.UnixNano()) })
}
