package experiment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// What the verdicts say at the edges, and that the page's sample keeps the stated error rate.

func sameWeekRuns(arm string, n, recovered int, start time.Time) []Run {
	out := make([]Run, n)
	for i := range out {
		out[i] = Run{WorkflowID: fmt.Sprintf("%s-%d", arm, i), InvoiceID: fmt.Sprintf("inv-%s-%d", arm, i),
			Holdout: "treatment", Variant: arm, DecidedBy: "llm", Currency: "USD", AmountDueMinor: 10000, StartedAt: start}
		if i < recovered {
			out[i].Recovered, out[i].RecoveredAmountMinor, out[i].Attribution = true, 10000, AttributionAfterMessage
		}
	}
	return out
}

func variantComparison(t *testing.T, runs []Run) Comparison {
	t.Helper()
	start := runs[0].StartedAt
	a := Analyze(runs, Config{Now: start.AddDate(0, 2, 0), Window: 28 * 24 * time.Hour})
	for _, e := range a.Experiments {
		if e.Kind == KindVariant {
			return e.Comparisons[0]
		}
	}
	t.Fatal("no variant experiment")
	return Comparison{}
}

// A variant recovering 50% against control's 20%, 400 runs each: the always-valid p-value is
// 6e-14 and the always-valid interval 20–40 points — the mSPRT was chosen precisely so that
// such a result may be acted on at any look. The verdict shown beside those numbers says
// "not enough data (400 of 2115 needed)": N is the size for a 5-point effect, not for the
// one observed, and the page contradicts itself.
func TestAHugeSignificantUpliftIsNotCalledNotEnoughData(t *testing.T) {
	start := time.Date(2026, 9, 7, 12, 0, 0, 0, time.UTC)
	c := variantComparison(t, append(sameWeekRuns("control", 400, 80, start), sameWeekRuns("b", 400, 200, start)...))
	if c.Significant && strings.HasPrefix(c.Verdict, "not enough data") {
		t.Errorf("p = %.2g < α = %g, always-valid interval %.1f–%.1f points, yet the verdict is %q",
			c.P, c.Alpha, c.DiffLow*100, c.DiffHigh*100, c.Verdict)
	}
}

// Every control run unrecovered, every treated run recovered, 3,000 each (more than the
// runs needed): Sato's variance is exactly 0 at these margins, so AlwaysValidP returns 1 and
// the verdict is "no significant difference" with a 100-point difference shown beside it.
func TestAllRecoveredAgainstNoneRecoveredIsSignificant(t *testing.T) {
	start := time.Date(2026, 9, 7, 12, 0, 0, 0, time.UTC)
	c := variantComparison(t, append(sameWeekRuns("control", 3000, 0, start), sameWeekRuns("b", 3000, 3000, start)...))
	if !c.Significant || !strings.Contains(c.Verdict, "better") {
		t.Errorf("0 of 3000 against 3000 of 3000: p = %g, verdict %q; want b better", c.P, c.Verdict)
	}
}

// The experiments are analysed with a week-stratified Mantel–Haenszel difference and an
// always-valid mSPRT (Method); docs still describe the replaced fixed-horizon z-test and its
// sample sizes (prompts/README: "a two-proportion z-test at α = 0.05 … 312 of 1377 needed";
// ARCHITECTURE: "two-proportion z-test, pooled SE"; PACKAGES: "two-proportion z-test with
// pooled standard error … Wald interval … Fleiss", and the decider "of the first decision").
func TestDocsDescribeTheTestAsBuilt(t *testing.T) {
	for _, doc := range []string{"../../../prompts/README.md", "../../../docs/ARCHITECTURE.md", "../../../docs/PACKAGES.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ")
		for _, stale := range []string{"two-proportion z-test at α", "two-proportion z-test, pooled SE",
			"two-proportion z-test with pooled standard error", "of 1377 needed", "Fleiss, no continuity correction",
			"the decider is \"\" (outside the model-against-rules comparison) when that decision sent nothing"} {
			if strings.Contains(text, stale) {
				t.Errorf("%s describes the replaced analysis: %q", doc, stale)
			}
		}
	}
}

// The page promises that the verdicts stay within α however often it is read. That holds for
// one growing sample (the mSPRT's likelihood ratio is a martingale over it), not for a
// sliding one: a 13-week window looked at weekly for three years calls equal arms different
// in about 110 of 1,000 histories. The page therefore analyses each experiment over all its
// runs since its first (report.Load; ?days= and --days bound only the per-dimension table).
// Equal arms (30%, 300 runs per arm per week, weeks as strata exactly as compare does:
// MantelHaenszelRD, AlwaysValidP with τ = MDE = 0.05, one comparison at α = 0.05), looked at
// weekly over the growing sample for three years: called different in at most α of the
// seeded histories (14 of these 1,000).
func TestTheGrowingSamplePageKeepsTheStatedErrorRate(t *testing.T) {
	const seeds, weeks, per, p = 1000, 156, 300, 0.3
	calls := 0
	st := make([]Stratum, weeks)
	for s := 0; s < seeds; s++ {
		rng := rand.New(rand.NewPCG(uint64(s), 18))
		for w := range st {
			st[w] = Stratum{N0: per, N1: per}
			for i := 0; i < per; i++ {
				if rng.Float64() < p {
					st[w].K0++
				}
				if rng.Float64() < p {
					st[w].K1++
				}
			}
		}
		for look := 1; look <= weeks; look++ {
			if d, v := MantelHaenszelRD(st[:look]); AlwaysValidP(d, v, 0.05) < 0.05 {
				calls++
				break
			}
		}
	}
	t.Logf("equal arms called different at some weekly look of the growing sample in %d of %d histories", calls, seeds)
	// 5% of 1,000 is 50; 70 is three standard errors above it.
	if calls > 70 {
		t.Errorf("equal arms called different at some weekly look of the growing sample in %d of %d histories (α = 0.05)", calls, seeds)
	}
}

// A 10% holdout: the control arm is the smaller, and needs fewer runs than each of two equal
// arms (the treatment arm's nine times as many carry most of the variance), while the two
// arms together need more.
func TestTheRunsNeededFollowTheArmsSplit(t *testing.T) {
	equal := SequentialSampleSize(0.3, 0.05, 0.05, 0.8, 0.05)
	small := SequentialSampleSizeRatio(0.3, 0.05, 0.05, 0.8, 0.05, 9)
	if small >= equal || small*10 <= 2*equal {
		t.Errorf("a 1:9 split needs %d in the smaller arm (%d in all); equal arms %d each (%d in all)", small, small*10, equal, 2*equal)
	}
	// And the verdict counts the smaller arm's runs against the smaller arm's need.
	start := time.Date(2026, 9, 7, 12, 0, 0, 0, time.UTC)
	c := variantComparison(t, append(sameWeekRuns("control", 100, 30, start), sameWeekRuns("b", 900, 270, start)...))
	if c.Have != 100 || c.NeededPerArm != SequentialSampleSizeRatio(0.3, 0.05, 0.05, 0.8, 0.05, 9) {
		t.Errorf("100 control runs against 900: have %d, needed %d; want 100 of %d", c.Have, c.NeededPerArm, small)
	}
}

// A significant result whose always-valid interval is 0.1–7.9 points (2,700 runs per arm,
// 30.0% against 34.0%) is worded "b better by 0–8 points": a verdict that the arm is better
// by possibly nothing, beside p < α. pointsRange clamps and rounds the low end to 0.
func TestASignificantVerdictNeverSaysBetterByZero(t *testing.T) {
	start := time.Date(2026, 9, 7, 12, 0, 0, 0, time.UTC)
	c := variantComparison(t, append(sameWeekRuns("control", 2700, 810, start), sameWeekRuns("b", 2700, 918, start)...))
	if c.Significant && strings.Contains(c.Verdict, "better by 0–") {
		t.Errorf("p = %.3g < %g, interval %.2f–%.2f points: verdict %q", c.P, c.Alpha, c.DiffLow*100, c.DiffHigh*100, c.Verdict)
	}
}
