package experiment

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// The experiments, in report order (Experiment.Kind).
const (
	KindHoldout   = "holdout"    // control (the rules' plain reminders) against treatment
	KindVariant   = "variant"    // prompt variants
	KindDecidedBy = "decided_by" // the model's decisions against the rules'
)

// Method states the test for the report.
const Method = "two-proportion z-test, pooled standard error, two-sided; Wilson intervals for rates, " +
	"Wald (unpooled) interval for the difference, normal-approximation intervals for amount per run and its difference; " +
	"each arm is compared with the first (control), Bonferroni-corrected for the number of comparisons"

// Config sets the analysis. Zero fields take the defaults.
type Config struct {
	// Now and Window: a run counts once its attribution window has closed (StartedAt+Window
	// <= Now), so that arms compare like for like; Window 0 counts every run.
	Now    time.Time
	Window time.Duration
	Alpha  float64 // significance level, default 0.05 (before the Bonferroni correction)
	Power  float64 // for the minimum sample size, default 0.8
	MDE    float64 // minimum detectable effect, a fraction, default 0.05 (5 points)
}

func (c Config) withDefaults() Config {
	c.Alpha = cmp.Or(c.Alpha, 0.05)
	c.Power = cmp.Or(c.Power, 0.8)
	c.MDE = cmp.Or(c.MDE, 0.05)
	return c
}

// Analysis is every experiment found in the runs.
type Analysis struct {
	Config      Config
	Counted     int // runs whose window has closed
	Immature    int // runs left out: their window is still open
	Experiments []Experiment
}

// Experiment is one comparison of arms, in one segment and one currency.
type Experiment struct {
	Kind        string
	Segment     string // "" for all segments
	Currency    string
	Arms        []Arm        // the baseline (control) first
	Comparisons []Comparison // each later arm against Arms[0]
	Funnel      []FunnelStep
	Weeks       []Week
}

// Arm is what the runs of one arm did.
type Arm struct {
	Name                    string
	Runs, Recovered, Lost   int
	Rate, RateLow, RateHigh float64 // recovery rate and its Wilson interval (fractions)
	RecoveredMinor          int64   // recovered amount, minor units of the currency
	// PerRunMinor is RecoveredMinor / Runs with its normal-approximation interval.
	PerRunMinor, PerRunLow, PerRunHigh float64
	PerRunSE                           float64 // standard error of PerRunMinor
	IncentiveMinor                     int64   // incentive spend
	MedianHoursToRecover               float64 // over the recovered runs (0 when none)
	Attribution                        map[string]int
}

// Comparison is an arm against the baseline.
type Comparison struct {
	Base, Arm          string
	Diff               float64 // Arm's rate minus Base's (a fraction)
	DiffLow, DiffHigh  float64 // its interval at the corrected level
	Z, P               float64
	Alpha              float64 // the corrected level the p-value is held to
	Significant        bool
	Have, NeededPerArm int // runs in the smaller arm; runs needed in each
	// PerRunDiff is Arm's recovered amount per run minus Base's (minor units), with its
	// normal-approximation (Welch) interval at the corrected level.
	PerRunDiff, PerRunDiffLow, PerRunDiffHigh float64
	Verdict                                   string
}

// FunnelStep: of an arm's runs, how many were sent a message at Step and how many were
// recovered after that step's message.
type FunnelStep struct {
	Arm            string
	Step           int
	Sent           int
	RecoveredAfter int
}

// Week is an arm's runs started in the week beginning Start (Monday, UTC).
type Week struct {
	Arm             string
	Start           time.Time
	Runs, Recovered int
}

// Analyze groups the runs into experiments and compares their arms.
func Analyze(runs []Run, cfg Config) Analysis {
	cfg = cfg.withDefaults()
	a := Analysis{Config: cfg}
	counted := make([]*Run, 0, len(runs)) // pointers: a Run is large, and is grouped several times
	for i := range runs {
		if cfg.Window > 0 && runs[i].StartedAt.Add(cfg.Window).After(cfg.Now) {
			a.Immature++
			continue
		}
		counted = append(counted, &runs[i])
	}
	a.Counted = len(counted)
	treated := slices.DeleteFunc(slices.Clone(counted), func(r *Run) bool { return r.Holdout == "control" })
	a.add(KindHoldout, "", counted, func(r *Run) (string, bool) { return r.Holdout, r.Holdout != "" })
	a.add(KindVariant, "", treated, func(r *Run) (string, bool) { return r.Variant, true })
	llmRules := func(r *Run) (string, bool) { return r.DecidedBy, r.DecidedBy == "llm" || r.DecidedBy == "rules" }
	a.add(KindDecidedBy, "", treated, llmRules)
	segs := map[string]bool{}
	for _, r := range treated {
		segs[r.Segment] = true
	}
	if len(segs) > 1 {
		for _, s := range sortedKeys(segs) {
			seg := slices.DeleteFunc(slices.Clone(treated), func(r *Run) bool { return r.Segment != s })
			a.add(KindDecidedBy, cmp.Or(s, "(unknown)"), seg, llmRules)
		}
	}
	return a
}

// add adds one experiment per currency over the runs arm assigns (ok false: not in it); an
// experiment needs two arms.
func (a *Analysis) add(kind, segment string, runs []*Run, arm func(*Run) (string, bool)) {
	byCur := map[string]map[string][]*Run{}
	for _, r := range runs {
		name, ok := arm(r)
		if !ok {
			continue
		}
		if byCur[r.Currency] == nil {
			byCur[r.Currency] = map[string][]*Run{}
		}
		byCur[r.Currency][name] = append(byCur[r.Currency][name], r)
	}
	for _, cur := range sortedKeys(byCur) {
		arms := byCur[cur]
		if len(arms) < 2 {
			continue
		}
		names := sortedKeys(arms)
		base := baseline(kind, names)
		names = append([]string{base}, slices.DeleteFunc(names, func(n string) bool { return n == base })...)
		e := Experiment{Kind: kind, Segment: segment, Currency: cur}
		for _, n := range names {
			e.Arms = append(e.Arms, armStats(n, arms[n]))
			e.Funnel = append(e.Funnel, funnel(n, arms[n])...)
			e.Weeks = append(e.Weeks, weeks(n, arms[n])...)
		}
		for _, arm := range e.Arms[1:] {
			e.Comparisons = append(e.Comparisons, compare(e.Arms[0], arm, len(e.Arms)-1, a.Config))
		}
		a.Experiments = append(a.Experiments, e)
	}
}

// baseline picks the arm the others are compared with.
func baseline(kind string, names []string) string {
	for _, b := range map[string][]string{KindHoldout: {"control"}, KindVariant: {"control", ""}, KindDecidedBy: {"rules"}}[kind] {
		if slices.Contains(names, b) {
			return b
		}
	}
	return names[0]
}

func armStats(name string, runs []*Run) Arm {
	a := Arm{Name: name, Runs: len(runs), Attribution: map[string]int{}}
	perRun := make([]float64, len(runs))
	var hours []float64
	for i, r := range runs {
		a.IncentiveMinor += r.IncentiveCostMinor
		if r.Lost {
			a.Lost++
		}
		if !r.Recovered {
			continue
		}
		a.Recovered++
		a.RecoveredMinor += r.RecoveredAmountMinor
		perRun[i] = float64(r.RecoveredAmountMinor)
		hours = append(hours, r.TimeToRecover.Hours())
		a.Attribution[r.Attribution]++
	}
	a.Rate = float64(a.Recovered) / float64(a.Runs)
	a.RateLow, a.RateHigh = Wilson(a.Recovered, a.Runs, 1.959963984540054)
	a.PerRunMinor, a.PerRunLow, a.PerRunHigh = MeanCI(perRun, 1.959963984540054)
	a.PerRunSE = (a.PerRunHigh - a.PerRunMinor) / 1.959963984540054
	a.MedianHoursToRecover = median(hours)
	return a
}

// compare tests arm against base; comparisons is the number of arms compared with base
// (the Bonferroni divisor).
func compare(base, arm Arm, comparisons int, cfg Config) Comparison {
	c := Comparison{Base: base.Name, Arm: arm.Name, Diff: arm.Rate - base.Rate,
		Alpha: cfg.Alpha / float64(comparisons), Have: min(base.Runs, arm.Runs)}
	zc := zQuantile(1 - c.Alpha/2)
	c.DiffLow, c.DiffHigh = DiffCI(base.Recovered, base.Runs, arm.Recovered, arm.Runs, zc)
	c.Z, c.P = TwoProportionZ(base.Recovered, base.Runs, arm.Recovered, arm.Runs)
	c.NeededPerArm = SampleSize(base.Rate, cfg.MDE, c.Alpha, cfg.Power)
	c.PerRunDiff = arm.PerRunMinor - base.PerRunMinor
	half := zc * math.Hypot(base.PerRunSE, arm.PerRunSE)
	c.PerRunDiffLow, c.PerRunDiffHigh = c.PerRunDiff-half, c.PerRunDiff+half
	c.Significant = c.P < c.Alpha
	c.Verdict = verdict(c)
	return c
}

// verdict says the comparison in words. Below the minimum sample size it says so whatever the
// test says (a fixed-horizon test: looking early inflates the error rate).
func verdict(c Comparison) string {
	switch {
	case c.Have < c.NeededPerArm:
		return fmt.Sprintf("not enough data (%d of %d needed)", c.Have, c.NeededPerArm)
	case !c.Significant:
		return "no significant difference"
	case c.Diff > 0:
		return fmt.Sprintf("%s better by %s points", ArmLabel(c.Arm), pointsRange(c.DiffLow, c.DiffHigh))
	default:
		return fmt.Sprintf("%s better by %s points", ArmLabel(c.Base), pointsRange(-c.DiffHigh, -c.DiffLow))
	}
}

// pointsRange renders an interval of a positive difference in points ("4–9"); the test's
// pooled error can call a difference significant whose unpooled interval just touches 0, so
// the low end is at least 0.
func pointsRange(lo, hi float64) string {
	return fmt.Sprintf("%.0f–%.0f", math.Max(lo, 0)*100, hi*100)
}

// ArmLabel is how an arm is shown: "(none)" for runs without a variant.
func ArmLabel(name string) string { return cmp.Or(name, "(none)") }

func funnel(arm string, runs []*Run) []FunnelStep {
	steps := 0
	for _, r := range runs {
		steps = max(steps, r.MessagesSent, r.AttributedStep)
	}
	out := make([]FunnelStep, steps)
	for k := range out {
		out[k] = FunnelStep{Arm: arm, Step: k + 1}
	}
	for _, r := range runs {
		for k := 0; k < r.MessagesSent; k++ {
			out[k].Sent++
		}
		if r.Recovered && r.AttributedStep > 0 &&
			(r.Attribution == AttributionAfterMessage || r.Attribution == AttributionAfterClick) {
			out[r.AttributedStep-1].RecoveredAfter++
		}
	}
	return out
}

func weeks(arm string, runs []*Run) []Week {
	by := map[time.Time]*Week{}
	for _, r := range runs {
		d := r.StartedAt.UTC().Truncate(24 * time.Hour)
		start := d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
		w := by[start]
		if w == nil {
			w = &Week{Arm: arm, Start: start}
			by[start] = w
		}
		w.Runs++
		if r.Recovered {
			w.Recovered++
		}
	}
	out := make([]Week, 0, len(by))
	for _, w := range by {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b Week) int { return a.Start.Compare(b.Start) })
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
