package experiment

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The experiments, in report order (Experiment.Kind).
const (
	KindHoldout   = "holdout"    // control (the rules' plain reminders) against treatment
	KindVariant   = "variant"    // prompt variants
	KindDecidedBy = "decided_by" // the model's decisions against the rules'
)

// Method states the test for the report.
const Method = "each arm is compared with the first (control) within strata of the week its runs started " +
	"(Monday, UTC), so that a change of the holdout share or of recovery over time does not make equal arms look different: " +
	"the Mantel–Haenszel common difference of recovery rates (Sato's variance) and the stratified difference of amount per run; " +
	"these are tested with an always-valid mixture sequential probability ratio test (mSPRT, Johari, Pekelis and Walsh 2017; " +
	"normal mixing distribution with a scale of the minimum detectable effect), so the page may be read at every look, " +
	"weekly or daily, without raising the error rate above α; the intervals of the differences are the matching " +
	"always-valid confidence sequences, and the p-values always-valid p-values; Bonferroni-corrected for the number of " +
	"comparisons; the minimum sample size is where one look has the stated power at that effect. " +
	"Per-arm rates and amounts are pooled over weeks, with 95% Wilson and normal-approximation intervals"

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
	Base, Arm string
	// Diff is Arm's recovery rate minus Base's (a fraction) within start weeks: the
	// Mantel–Haenszel common difference, which can differ from the pooled rates' difference.
	Diff              float64
	DiffLow, DiffHigh float64 // its always-valid confidence sequence at the corrected level
	Z                 float64 // Diff over its standard error (Sato)
	P                 float64 // the mSPRT's always-valid p-value
	Alpha             float64 // the corrected level the p-value is held to
	Significant       bool
	// Have is the smaller arm's runs in the weeks both arms ran; NeededPerArm the smaller
	// arm's runs at which one look detects the minimum effect with the configured power, the
	// arms keeping the ratio of their sizes (a 10% holdout's control needs fewer runs, and
	// its treatment arm many more, than each of two equal arms).
	Have, NeededPerArm int
	// PerRunDiff is Arm's recovered amount per run minus Base's (minor units) within start
	// weeks, with its always-valid confidence sequence at the corrected level.
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
	cutoff := cfg.Now.Add(-cfg.Window)    // a run started after it is still inside its window
	for i := range runs {
		if cfg.Window > 0 && runs[i].StartedAt.After(cutoff) {
			a.Immature++
			continue
		}
		counted = append(counted, &runs[i])
	}
	a.Counted = len(counted)
	treated := slices.DeleteFunc(slices.Clone(counted), func(r *Run) bool { return IsControl(r.Holdout) })
	a.add(KindHoldout, "", counted, func(r *Run) (string, bool) { return r.Holdout, r.Holdout != "" })
	// Runs without a variant were not in the variant experiment (they ran before it, or
	// recorded none): they are not an arm.
	a.add(KindVariant, "", treated, func(r *Run) (string, bool) { return r.Variant, r.Variant != "" })
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
	type key struct{ cur, arm string }
	by := map[key][]*Run{}
	for _, r := range runs {
		name, ok := arm(r)
		if !ok {
			continue
		}
		k := key{r.Currency, name}
		by[k] = append(by[k], r)
	}
	byCur := map[string]map[string][]*Run{}
	for k, rs := range by {
		if byCur[k.cur] == nil {
			byCur[k.cur] = map[string][]*Run{}
		}
		byCur[k.cur][k.arm] = rs
	}
	for _, cur := range sortedKeys(byCur) {
		arms := byCur[cur]
		names := sortedKeys(arms)
		// The holdout: each control treatment is its own experiment against the other arms.
		var controls []string
		if kind == KindHoldout {
			controls = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !IsControl(n) })
		}
		if len(controls) == 0 {
			a.addArms(kind, segment, cur, arms, baseline(kind, names), names)
			continue
		}
		others := slices.DeleteFunc(slices.Clone(names), IsControl)
		for _, c := range controls {
			a.addArms(kind, segment, cur, arms, c, append([]string{c}, others...))
		}
	}
}

// addArms adds the experiment of the named arms against base; it needs two arms.
func (a *Analysis) addArms(kind, segment, cur string, arms map[string][]*Run, base string, names []string) {
	if len(names) < 2 {
		return
	}
	names = append([]string{base}, slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == base })...)
	e := Experiment{Kind: kind, Segment: segment, Currency: cur}
	for _, n := range names {
		e.Arms = append(e.Arms, armStats(n, arms[n]))
		e.Funnel = append(e.Funnel, funnel(n, arms[n])...)
		e.Weeks = append(e.Weeks, weeks(n, arms[n])...)
	}
	for i, arm := range e.Arms[1:] {
		e.Comparisons = append(e.Comparisons,
			compare(e.Arms[0], arm, arms[base], arms[names[i+1]], len(e.Arms)-1, a.Config))
	}
	a.Experiments = append(a.Experiments, e)
}

// IsControl says whether a holdout arm is a control arm ("control", "control:<treatment>").
func IsControl(holdout string) bool { return strings.HasPrefix(holdout, "control") }

// baseline picks the arm the others are compared with.
func baseline(kind string, names []string) string {
	for _, b := range map[string][]string{KindHoldout: {"control"}, KindVariant: {"control"}, KindDecidedBy: {"rules"}}[kind] {
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

// compare tests arm against base within strata of the start week; comparisons is the number
// of arms compared with base (the Bonferroni divisor).
func compare(base, arm Arm, baseRuns, armRuns []*Run, comparisons int, cfg Config) Comparison {
	c := Comparison{Base: base.Name, Arm: arm.Name, Alpha: cfg.Alpha / float64(comparisons)}
	type cell struct {
		n, k int
		sum  float64 // recovered amount
	}
	type stratum [2]cell // base, arm
	by := map[int64]*stratum{}
	for side, runs := range [2][]*Run{baseRuns, armRuns} {
		for _, r := range runs {
			wk := week(r.StartedAt)
			s := by[wk]
			if s == nil {
				s = &stratum{}
				by[wk] = s
			}
			s[side].n++
			if r.Recovered {
				s[side].k++
				s[side].sum += float64(r.RecoveredAmountMinor)
			}
		}
	}
	strata := make([]Stratum, 0, len(by))
	// Amount per run: the difference of means within each stratum, weighted as the
	// Mantel–Haenszel difference is; its variance takes each arm's variance over all its runs
	// (robust in sparse strata, and conservative when the weeks differ).
	s0, s1 := sq(base.PerRunSE)*float64(base.Runs), sq(arm.PerRunSE)*float64(arm.Runs)
	var have0, have1 int
	var w, amt, amtVar float64
	for _, s := range by {
		strata = append(strata, Stratum{N0: s[0].n, K0: s[0].k, N1: s[1].n, K1: s[1].k})
		if s[0].n == 0 || s[1].n == 0 {
			continue
		}
		have0, have1 = have0+s[0].n, have1+s[1].n
		n0, n1 := float64(s[0].n), float64(s[1].n)
		wk := n0 * n1 / (n0 + n1)
		w += wk
		amt += wk * (s[1].sum/n1 - s[0].sum/n0)
		amtVar += wk * wk * (s0/n0 + s1/n1)
	}
	// Runs in weeks where both arms ran: only those are compared.
	c.Have = min(have0, have1)
	var v float64
	c.Diff, v = MantelHaenszelRD(strata)
	if v > 0 {
		c.Z = c.Diff / math.Sqrt(v)
	}
	tau := cfg.MDE
	c.P = AlwaysValidP(c.Diff, v, tau)
	c.DiffLow, c.DiffHigh = ConfidenceSequence(c.Diff, v, tau, c.Alpha)
	c.DiffLow, c.DiffHigh = math.Max(-1, c.DiffLow), math.Min(1, c.DiffHigh)
	if w > 0 {
		c.PerRunDiff, amtVar = amt/w, amtVar/(w*w)
	}
	// The amount's mixing scale: the minimum detectable effect on the rate, in money (of the
	// mean amount due).
	amtTau := cfg.MDE * meanDue(baseRuns, armRuns)
	if amtTau <= 0 {
		amtTau = math.Sqrt(max(s0, s1))
	}
	c.PerRunDiffLow, c.PerRunDiffHigh = c.PerRunDiff, c.PerRunDiff
	if amtTau > 0 {
		c.PerRunDiffLow, c.PerRunDiffHigh = ConfidenceSequence(c.PerRunDiff, amtVar, amtTau, c.Alpha)
	}
	ratio := 1.0 // the compared arm's runs per base run, in the weeks both ran
	if have0 > 0 && have1 > 0 {
		ratio = float64(have1) / float64(have0)
	}
	c.NeededPerArm = SequentialSampleSizeRatio(base.Rate, cfg.MDE, c.Alpha, cfg.Power, tau, ratio)
	c.Significant = c.P < c.Alpha
	c.Verdict = verdict(c)
	return c
}

func sq(x float64) float64 { return x * x }

func meanDue(runs ...[]*Run) float64 {
	var sum float64
	n := 0
	for _, rs := range runs {
		for _, r := range rs {
			sum += float64(r.AmountDueMinor)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// verdict says the comparison in words. A significant result is valid at any number of runs
// (the test is always valid), so it is given whatever the sample size; a result that is not
// significant below the minimum sample size (where a look has the stated power) says that
// there is not enough data yet, rather than that there is no difference.
func verdict(c Comparison) string {
	switch {
	case !c.Significant && c.Have < c.NeededPerArm:
		return fmt.Sprintf("not enough data (%d of %d needed)", c.Have, c.NeededPerArm)
	case !c.Significant:
		return "no significant difference"
	case c.Diff > 0:
		return fmt.Sprintf("%s better by %s points", ArmLabel(c.Arm), pointsRange(c.DiffLow, c.DiffHigh))
	default:
		return fmt.Sprintf("%s better by %s points", ArmLabel(c.Base), pointsRange(-c.DiffHigh, -c.DiffLow))
	}
}

// pointsRange renders an interval of a positive difference in points ("4–9"). The confidence
// sequence excludes 0 exactly when the test rejects, so the low end of a significant result
// is above 0: when it rounds to 0 it is shown with the digits that keep it above 0 ("0.1–8"),
// never as "better by 0".
func pointsRange(lo, hi float64) string {
	low := math.Max(lo, 0) * 100
	s := fmt.Sprintf("%.0f", low)
	for prec := 1; low > 0 && prec <= 6 && strings.Trim(s, "0.") == ""; prec++ {
		s = strconv.FormatFloat(low, 'f', prec, 64)
	}
	return fmt.Sprintf("%s–%.0f", s, hi*100)
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
	by := map[int64]*Week{}
	for _, r := range runs {
		wk := week(r.StartedAt)
		w := by[wk]
		if w == nil {
			w = &Week{Arm: arm, Start: weekStart(wk)}
			by[wk] = w
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

// week numbers t's week (Monday to Sunday, UTC): weeks since the one of 1970-01-05, a Monday.
// It is integer arithmetic (the analysis computes it for every run, at every look).
func week(t time.Time) int64 {
	const monday, length = 4 * 86400, 7 * 86400 // 1970-01-05 00:00 UTC; seconds in a week
	s := t.Unix() - monday
	w := s / length
	if s%length < 0 {
		w--
	}
	return w
}

// weekStart is the Monday 00:00 UTC that begins week w.
func weekStart(w int64) time.Time { return time.Unix(w*7*86400+4*86400, 0).UTC() }

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
