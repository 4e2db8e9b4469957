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

// Marketing raised holdout.share_percent from 10% to 50% after a month (the policy allows
// it; ArmFor reassigns new invoices). Recovery fell from 50% to 30% for everyone in month 2
// (season, a billing outage): within each month control and treatment recover exactly
// alike. Pooled over the months control leans toward the bad month and would look worse
// (Simpson's paradox); compared within start weeks the arms are equal.
func TestAHoldoutShareChangeMidExperimentDoesNotInventAnUplift(t *testing.T) {
	var runs []experiment.Run
	add := func(month int, arm string, n, recovered int) {
		for i := 0; i < n; i++ {
			start := t0.AddDate(0, month, 0).Add(time.Duration(i) * time.Minute)
			r := experiment.Run{WorkflowID: fmt.Sprintf("%d-%s-%d", month, arm, i), Holdout: arm, Currency: "USD",
				StartedAt: start, AmountDueMinor: 1000}
			if i < recovered {
				r.Recovered, r.RecoveredAt, r.TimeToRecover, r.RecoveredAmountMinor = true, start.Add(24*time.Hour), 24*time.Hour, 1000
				r.Attribution = experiment.AttributionAfterMessage
			}
			runs = append(runs, r)
		}
	}
	add(0, "control", 400, 200)     // month 1, share 10%: 50%
	add(0, "treatment", 3600, 1800) // 50%
	add(1, "control", 2000, 600)    // month 2, share 50%: 30%
	add(1, "treatment", 2000, 600)  // 30%
	a := experiment.Analyze(runs, experiment.Config{Now: t0.AddDate(0, 3, 0), Window: 28 * 24 * time.Hour})
	for _, e := range a.Experiments {
		if e.Kind != experiment.KindHoldout {
			continue
		}
		c := e.Comparisons[0]
		if c.Significant || strings.Contains(c.Verdict, "better") {
			t.Errorf("equal arms in every month; pooled verdict %q (diff %+.1f points, p=%.2g)", c.Verdict, c.Diff*100, c.P)
		}
		return
	}
	t.Fatal("no holdout experiment")
}

// The page is a live dashboard (GET /reports/recovery, no-store): marketing reads it every
// week. With equal arms (30% each), the share of experiments that show "X better by …" at
// some weekly look over half a year stays within the 5% the page states (a fixed-horizon
// test repeated at every look showed it in 15%).
func TestWeeklyLooksAtEqualArmsStayWithinTheStatedErrorRate(t *testing.T) {
	const seeds, perDay, days = 300, 60, 26 * 7 // 30 runs per arm a day, half a year
	window := 28 * 24 * time.Hour
	falseCalls := 0
	buf := make([]experiment.Run, 0, perDay*days)
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 0x18))
		runs := buf[:0]
		for day := range days {
			for i := range perDay {
				arm := "control"
				if i%2 == 1 {
					arm = "treatment"
				}
				r := experiment.Run{Holdout: arm, Currency: "USD", AmountDueMinor: 4900,
					StartedAt: t0.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*time.Minute)}
				if rng.Float64() < 0.3 {
					r.Recovered, r.RecoveredAmountMinor, r.TimeToRecover = true, 4900, 36*time.Hour
				}
				runs = append(runs, r)
			}
		}
		for look := t0.Add(window + 14*24*time.Hour); look.Before(t0.Add(days * 24 * time.Hour)); look = look.Add(7 * 24 * time.Hour) {
			a := experiment.Analyze(runs, experiment.Config{Now: look, Window: window})
			if c := holdout(t, a).Comparisons[0]; strings.Contains(c.Verdict, "better") {
				falseCalls++
				break
			}
		}
	}
	t.Logf("equal arms called different at some weekly look in %d of %d experiments", falseCalls, seeds)
	if rate := float64(falseCalls) / seeds; rate > 0.075 {
		t.Errorf("equal arms called different at some weekly look in %d of %d experiments (%.0f%%); the page states α = 5%%",
			falseCalls, seeds, rate*100)
	}
}

// The shipped experiment has variants control and B. Runs from before it existed (and runs
// whose first step was capped, which record no variant) have Variant "": they are an older
// period (here: a better season), not a randomised arm, and get no verdict.
func TestRunsWithoutAVariantAreNotAnArm(t *testing.T) {
	var runs []experiment.Run
	add := func(variant string, month, n, recovered int) {
		for i := 0; i < n; i++ {
			r := experiment.Run{Variant: variant, Currency: "USD", AmountDueMinor: 1000,
				StartedAt: t0.AddDate(0, month, 0).Add(time.Duration(i) * time.Minute)}
			r.Recovered = i < recovered
			runs = append(runs, r)
		}
	}
	add("", 0, 3000, 1500)       // before the experiment
	add("control", 2, 3000, 900) // the experiment's arms, equal
	add("B", 2, 3000, 900)
	a := experiment.Analyze(runs, experiment.Config{Now: t0.AddDate(1, 0, 0), Window: 28 * 24 * time.Hour})
	for _, e := range a.Experiments {
		if e.Kind != experiment.KindVariant {
			continue
		}
		for _, c := range e.Comparisons {
			if c.Arm == "" || c.Base == "" {
				t.Errorf("runs without a variant compared as an arm: %s vs %s: %q", experiment.ArmLabel(c.Base), experiment.ArmLabel(c.Arm), c.Verdict)
			}
		}
	}
}

// Two control treatments (plain reminders, then silence) are two experiments, each against
// the treatment arm, compared within the weeks both ran; never one pooled "control".
func TestEachControlTreatmentIsItsOwnExperiment(t *testing.T) {
	var runs []experiment.Run
	add := func(arm string, month, n, recovered int) {
		for i := 0; i < n; i++ {
			runs = append(runs, experiment.Run{Holdout: arm, Currency: "USD", AmountDueMinor: 1000, Recovered: i < recovered,
				StartedAt: t0.AddDate(0, month, 0).Add(time.Duration(i) * time.Minute)})
		}
	}
	add("control:rules_plain", 0, 4000, 1600) // 40%
	add("treatment", 0, 4000, 1600)           // 40%: plain reminders do as well
	add("control:no_messages", 2, 4000, 800)  // 20%
	add("treatment", 2, 4000, 1600)           // 40%: messages add 20 points
	a := experiment.Analyze(runs, experiment.Config{})
	var got []string
	for _, e := range a.Experiments {
		if e.Kind != experiment.KindHoldout {
			continue
		}
		c := e.Comparisons[0]
		got = append(got, fmt.Sprintf("%s %d/%d vs %s %d/%d: %.0f points, %s", e.Arms[0].Name, e.Arms[0].Recovered, e.Arms[0].Runs,
			e.Arms[1].Name, e.Arms[1].Recovered, e.Arms[1].Runs, c.Diff*100, strings.SplitN(c.Verdict, " by", 2)[0]))
	}
	want := []string{
		"control:no_messages 800/4000 vs treatment 3200/8000: 20 points, treatment better",
		"control:rules_plain 1600/4000 vs treatment 3200/8000: 0 points, no significant difference",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("holdout experiments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range a.Experiments {
		if e.Kind == experiment.KindVariant || e.Kind == experiment.KindDecidedBy {
			t.Errorf("control runs in the %s experiment", e.Kind)
		}
	}
}

func TestStratifiedDifferenceAndAlwaysValidTest(t *testing.T) {
	// One stratum: the Mantel–Haenszel difference is the plain difference and Sato's variance
	// the unpooled one: 40/100 vs 30/100 → 0.1, 0.4·0.6/100 + 0.3·0.7/100 = 0.0045.
	if d, v := experiment.MantelHaenszelRD([]experiment.Stratum{{N0: 100, K0: 30, N1: 100, K1: 40}}); math.Abs(d-0.1) > 1e-12 || math.Abs(v-0.0045) > 1e-12 {
		t.Errorf("one stratum: d=%v v=%v, want 0.1, 0.0045", d, v)
	}
	// Two strata with equal arms inside each but unequal shares: no difference.
	if d, _ := experiment.MantelHaenszelRD([]experiment.Stratum{{N0: 400, K0: 200, N1: 3600, K1: 1800}, {N0: 2000, K0: 600, N1: 2000, K1: 600}}); d != 0 {
		t.Errorf("equal within strata: d=%v, want 0", d)
	}
	// The mSPRT at d = 0: Λ = sqrt(v/(v+τ²)) = sqrt(0.0045/0.007) = 0.8018 (below 1: no evidence).
	if l := experiment.MixtureLR(0, 0.0045, 0.05); math.Abs(l-math.Sqrt(0.0045/0.007)) > 1e-12 {
		t.Errorf("Λ(0) = %v, want %v", l, math.Sqrt(0.0045/0.007))
	}
	// The confidence sequence excludes 0 exactly when the always-valid p is below α.
	for _, d := range []float64{0.05, 0.1, 0.15, 0.2, 0.25, 0.3} {
		lo, _ := experiment.ConfidenceSequence(d, 0.0045, 0.05, 0.05)
		if p := experiment.AlwaysValidP(d, 0.0045, 0.05); (lo > 0) != (p < 0.05) {
			t.Errorf("d=%v: interval from %v, p=%v: they disagree", d, lo, p)
		}
	}
}
