package experiment_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

var t0 = time.Date(2026, 9, 7, 10, 0, 0, 0, time.UTC) // a Monday

// synth draws n runs per holdout arm, each recovered with its arm's probability, from a
// seeded generator: the same seed gives the same runs.
func synth(seed uint64, n int, rates map[string]float64, currency string) []experiment.Run {
	return synthInto(nil, seed, n, rates, currency)
}

// synthInto is synth reusing buf's storage (the 500-seed tests draw millions of runs).
func synthInto(buf []experiment.Run, seed uint64, n int, rates map[string]float64, currency string) []experiment.Run {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	runs := buf[:0]
	for _, arm := range []string{"control", "treatment", "treatment-b"} {
		p, ok := rates[arm]
		if !ok {
			continue
		}
		for i := range n {
			r := experiment.Run{Holdout: arm,
				StartedAt: t0.Add(time.Duration(i%28) * 24 * time.Hour), Currency: currency,
				AmountDueMinor: 4900, DecidedBy: "rules", MessagesSent: 1}
			if rng.Float64() < p {
				r.Recovered, r.RecoveredAmountMinor = true, 4900
				r.TimeToRecover = 36 * time.Hour
				r.Attribution, r.AttributedStep, r.AttributedChannel = experiment.AttributionAfterMessage, 1, "email"
			} else {
				r.Lost = true
			}
			runs = append(runs, r)
		}
	}
	return runs
}

func holdout(t *testing.T, a experiment.Analysis) experiment.Experiment {
	t.Helper()
	for _, e := range a.Experiments {
		if e.Kind == experiment.KindHoldout {
			return e
		}
	}
	t.Fatalf("no holdout experiment in %+v", a.Experiments)
	return experiment.Experiment{}
}

func TestAPlantedTenPointUpliftIsDetected(t *testing.T) {
	covered, amountCovered := 0, 0
	for seed := range uint64(100) {
		runs := synth(seed, 3000, map[string]float64{"control": 0.30, "treatment": 0.40}, "USD")
		c := holdout(t, experiment.Analyze(runs, experiment.Config{})).Comparisons[0]
		if !c.Significant || !strings.HasPrefix(c.Verdict, "treatment better by ") || !strings.HasSuffix(c.Verdict, " points") {
			t.Fatalf("seed %d: a 10-point uplift over 3,000 runs per arm: verdict %q (p=%.3g)", seed, c.Verdict, c.P)
		}
		if c.DiffLow <= 0.10 && 0.10 <= c.DiffHigh {
			covered++
		}
		if c.PerRunDiffLow <= 490 && 490 <= c.PerRunDiffHigh { // 10 points of 4,900 a run
			amountCovered++
		}
	}
	// The 95% interval covers the planted 10 points in ~95 of 100 histories; fewer than 85 has
	// probability below 1e-4 (binomial), so a lower count is a wrong interval, not bad luck.
	if covered < 85 {
		t.Errorf("the interval of the difference covered the planted 10 points in %d of 100 histories; want about 95", covered)
	}
	if amountCovered < 85 {
		t.Errorf("the interval of the amount per run covered the planted 490 in %d of 100 histories; want about 95", amountCovered)
	}
}

func TestTheVerdictNamesTheBetterArmAndTheIntervalInPoints(t *testing.T) {
	runs := synth(7, 3000, map[string]float64{"control": 0.40, "treatment": 0.30}, "USD")
	c := holdout(t, experiment.Analyze(runs, experiment.Config{})).Comparisons[0]
	lo, hi := -c.DiffHigh*100, -c.DiffLow*100
	want := fmt.Sprintf("control better by %.0f–%.0f points", lo, hi)
	if c.Verdict != want || lo > 10 || hi < 10 {
		t.Errorf("verdict %q, want %q with 10 inside", c.Verdict, want)
	}
}

// falsePositives counts, over 500 deterministic seeds of arms with equal rates, the
// histories in which any arm is called different from control.
func falsePositives(t *testing.T, rates map[string]float64) int {
	t.Helper()
	calls := 0
	var buf []experiment.Run
	for seed := range uint64(500) {
		buf = synthInto(buf, seed, 4000, rates, "EUR")
		e := holdout(t, experiment.Analyze(buf, experiment.Config{}))
		for _, c := range e.Comparisons {
			if strings.HasPrefix(c.Verdict, "not enough data") {
				t.Fatalf("seed %d: 4,000 runs per arm judged too few: %s", seed, c.Verdict)
			}
		}
		for _, c := range e.Comparisons {
			if c.Significant {
				calls++
				break
			}
		}
	}
	return calls
}

// At α = 0.05 the number of 500 equal-arm histories called different is Binomial(500,
// ≤0.05): mean ≤ 25, standard deviation ≤ 4.9. More than 40 (over 3 deviations) would be a
// test that errs more often than it says; the seeds are fixed, so the count never changes.
// The test is always valid (it spends α over every look there may ever be), so at one look it
// calls equal arms different far less often than α: there is no lower bound. That it still
// finds real differences is TestAPlantedTenPointUpliftIsDetected's job.
func TestEqualArmsAreCalledDifferentAtMostAtTheStatedRate(t *testing.T) {
	n := falsePositives(t, map[string]float64{"control": 0.30, "treatment": 0.30})
	if n > 40 {
		t.Errorf("equal arms called different in %d of 500 histories; want at most about 25 (α = 0.05)", n)
	}
	t.Logf("equal arms called different in %d of 500 histories (α = 0.05)", n)
}

// With two arms against control the Bonferroni correction holds the chance that either is
// called different to at most α.
func TestTwoArmsAgainstControlKeepTheFamilyWiseRate(t *testing.T) {
	n := falsePositives(t, map[string]float64{"control": 0.30, "treatment": 0.30, "treatment-b": 0.30})
	if n > 40 {
		t.Errorf("some equal arm called different in %d of 500 histories; want at most about 25", n)
	}
	t.Logf("family-wise: some equal arm called different in %d of 500 histories", n)
}

func TestTooFewRunsSayNotEnoughData(t *testing.T) {
	// A 10-point difference on 40 runs an arm is not significant: that is too few runs to
	// tell, not evidence of no difference. (A significant result is given at any size: the
	// test is always valid.)
	runs := synth(3, 40, map[string]float64{"control": 0.30, "treatment": 0.40}, "USD")
	e := holdout(t, experiment.Analyze(runs, experiment.Config{}))
	c := e.Comparisons[0]
	if c.Significant {
		t.Fatalf("40 runs an arm, 30%% against 40%%: p = %g, significant", c.P)
	}
	need := experiment.SequentialSampleSize(e.Arms[0].Rate, 0.05, 0.05, 0.8, 0.05)
	if want := fmt.Sprintf("not enough data (40 of %d needed)", need); c.Verdict != want {
		t.Errorf("verdict %q, want %q", c.Verdict, want)
	}
}

func TestRunsWhoseWindowIsOpenAreLeftOut(t *testing.T) {
	runs := synth(1, 10, map[string]float64{"control": 0.5, "treatment": 0.5}, "USD")
	now := t0.Add(28*24*time.Hour + 14*24*time.Hour) // runs started on days 0..13 are mature
	a := experiment.Analyze(runs, experiment.Config{Now: now, Window: 28 * 24 * time.Hour})
	if a.Counted != 20 || a.Immature != 0 {
		t.Fatalf("counted %d, immature %d; want 20, 0", a.Counted, a.Immature)
	}
	a = experiment.Analyze(runs, experiment.Config{Now: t0.Add(28*24*time.Hour + 5*24*time.Hour), Window: 28 * 24 * time.Hour})
	if a.Counted != 12 || a.Immature != 8 { // days 0..5 of 0..9, two arms
		t.Errorf("counted %d, immature %d; want 12, 8", a.Counted, a.Immature)
	}
}

func TestAmountsStayInTheirCurrency(t *testing.T) {
	var runs []experiment.Run
	add := func(cur, arm string, due int64, recovered bool, incentive int64) {
		r := experiment.Run{Holdout: arm, Currency: cur, AmountDueMinor: due, StartedAt: t0, Recovered: recovered,
			IncentiveCostMinor: incentive}
		if recovered {
			r.RecoveredAmountMinor, r.Attribution = due, experiment.AttributionBillingRetry
		}
		runs = append(runs, r)
	}
	add("JPY", "control", 5000, true, 0)      // ¥5000
	add("JPY", "treatment", 7001, true, 700)  // ¥7001, ¥700 discount
	add("JPY", "treatment", 3000, false, 0)   //
	add("KWD", "control", 12345, true, 0)     // 12.345 KWD
	add("KWD", "treatment", 10001, true, 500) // 10.001 KWD, 0.500 discount
	a := experiment.Analyze(runs, experiment.Config{})
	got := map[string]string{}
	for _, e := range a.Experiments {
		for _, arm := range e.Arms {
			got[e.Currency+" "+arm.Name] = fmt.Sprintf("%s/%s/%s", experiment.Major(float64(arm.RecoveredMinor), e.Currency),
				experiment.Major(arm.PerRunMinor, e.Currency), experiment.Major(float64(arm.IncentiveMinor), e.Currency))
		}
	}
	want := map[string]string{
		"JPY control": "5000/5000/0", "JPY treatment": "7001/3501/700",
		"KWD control": "12.345/12.345/0.000", "KWD treatment": "10.001/10.001/0.500",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: recovered/per run/incentive %q, want %q", k, got[k], w)
		}
	}
	if c := a.Experiments[0].Comparisons[0]; a.Experiments[0].Currency != "JPY" || c.PerRunDiff != 3500.5-5000 {
		t.Errorf("JPY amount per run, treatment minus control: %v, want -1499.5", c.PerRunDiff)
	}
	if len(a.Experiments) != 2 {
		t.Errorf("%d experiments, want one per currency (2)", len(a.Experiments))
	}
}

func TestExperimentsVariantsAndModelAgainstRulesPerSegment(t *testing.T) {
	var runs []experiment.Run
	add := func(holdout, variant, by, seg string, recovered bool, step int) {
		r := experiment.Run{Holdout: holdout, Variant: variant, DecidedBy: by, Segment: seg, Currency: "USD",
			StartedAt: t0.Add(time.Duration(len(runs)) * 24 * time.Hour), MessagesSent: step, Recovered: recovered}
		if recovered {
			r.Attribution, r.AttributedStep, r.AttributedChannel = experiment.AttributionAfterMessage, step, "sms"
		}
		runs = append(runs, r)
	}
	add("control", "", "rules", "pro", false, 0) // holdout control: not in the variant or model experiments
	add("treatment", "control", "rules", "pro", true, 1)
	add("treatment", "empathetic", "llm", "pro", true, 2)
	add("treatment", "empathetic", "llm", "basic", false, 3)
	add("treatment", "control", "rules", "basic", false, 3)
	a := experiment.Analyze(runs, experiment.Config{})
	var got []string
	for _, e := range a.Experiments {
		var arms []string
		for _, arm := range e.Arms {
			arms = append(arms, fmt.Sprintf("%s:%d/%d", experiment.ArmLabel(arm.Name), arm.Recovered, arm.Runs))
		}
		got = append(got, fmt.Sprintf("%s[%s] %s", e.Kind, e.Segment, strings.Join(arms, " ")))
	}
	want := []string{
		"holdout[] control:0/1 treatment:2/4",
		"variant[] control:1/2 empathetic:1/2",
		"decided_by[] rules:1/2 llm:1/2",
		"decided_by[basic] rules:0/1 llm:0/1",
		"decided_by[pro] rules:1/1 llm:1/1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("experiments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Funnel of the empathetic arm: sent at steps 1, 2 (both runs), 3 (one); recovered after step 2.
	var funnel []string
	for _, f := range a.Experiments[1].Funnel {
		if f.Arm == "empathetic" {
			funnel = append(funnel, fmt.Sprintf("%d:%d→%d", f.Step, f.Sent, f.RecoveredAfter))
		}
	}
	if g := strings.Join(funnel, " "); g != "1:2→0 2:2→1 3:1→0" {
		t.Errorf("empathetic funnel %q, want 1:2→0 2:2→1 3:1→0", g)
	}
	// Weeks: t0 is a Monday; runs on days 1 and 4 (treatment arm of the holdout) fall in
	// t0's week, days 2 and 3 too.
	for _, w := range a.Experiments[0].Weeks {
		if !w.Start.Equal(t0.Truncate(24 * time.Hour)) {
			t.Errorf("week of %s, want every run in the week of %s", w.Start, t0.Format(time.DateOnly))
		}
	}
}

func TestStatisticsAgainstPublishedValues(t *testing.T) {
	// Wilson 95% for 30/100: [0.2189, 0.3958] (Newcombe 1998, method 3).
	if lo, hi := experiment.Wilson(30, 100, 1.96); math.Abs(lo-0.2189) > 1e-4 || math.Abs(hi-0.3958) > 1e-4 {
		t.Errorf("Wilson(30, 100) = [%.4f, %.4f], want [0.2189, 0.3958]", lo, hi)
	}
	// 30% vs 40% of 500 each: pooled p = 0.35, SE = 0.030166, z = 3.315, p = 0.000916.
	if z, p := experiment.TwoProportionZ(150, 500, 200, 500); math.Abs(z-3.3150) > 1e-3 || math.Abs(p-0.000916) > 1e-5 {
		t.Errorf("z-test 150/500 vs 200/500: z=%.4f p=%.6f, want z=3.3150 p=0.000916", z, p)
	}
	// 30% → 35% at α 0.05, power 0.8: 1,377 per arm (Fleiss, no continuity correction).
	if n := experiment.SampleSize(0.30, 0.05, 0.05, 0.8); n != 1377 {
		t.Errorf("SampleSize(30%% → 35%%) = %d, want 1377", n)
	}
}
