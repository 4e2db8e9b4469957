package policy_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/model/policy"
)

func TestShippedHoldoutIsOff(t *testing.T) {
	p := defaultPolicy(t)
	if p.Holdout.On() || p.Holdout.ArmFor("inv_1") != "" {
		t.Fatalf("the shipped policy holds out runs: %+v", p.Holdout)
	}
}

func TestHoldoutArmIsDeterministicByInvoiceAndAtTheConfiguredShare(t *testing.T) {
	const n = 20000
	for _, share := range []float64{2.5, 10, 50} {
		h := policy.Holdout{Experiment: "holdout-test", SharePercent: share}
		control := 0
		for i := range n {
			id := fmt.Sprintf("in_%07d", i)
			arm := h.ArmFor(id)
			if arm != h.ArmFor(id) {
				t.Fatalf("invoice %s: two different arms", id)
			}
			switch arm {
			case policy.ArmControl:
				control++
			case policy.ArmTreatment:
			default:
				t.Fatalf("invoice %s: arm %q", id, arm)
			}
		}
		// Fixed invoice ids: the count is fixed. Within 5 standard deviations of a fair draw.
		p := share / 100
		mean, sd := n*p, math.Sqrt(n*p*(1-p))
		if math.Abs(float64(control)-mean) > 5*sd {
			t.Errorf("share %v%%: %d of %d runs in control, want %.0f ± %.0f", share, control, n, mean, 5*sd)
		}
	}
}

func TestHoldoutArmDependsOnTheExperimentName(t *testing.T) {
	a := policy.Holdout{Experiment: "a", SharePercent: 50}
	b := policy.Holdout{Experiment: "b", SharePercent: 50}
	differ := 0
	for i := range 1000 {
		id := fmt.Sprintf("in_%d", i)
		if a.ArmFor(id) != b.ArmFor(id) {
			differ++
		}
	}
	if differ < 400 || differ > 600 { // independent halves differ on about 500 of 1000
		t.Fatalf("renaming the experiment changed %d of 1000 arms, want about 500", differ)
	}
	if all := (policy.Holdout{SharePercent: 100}); all.ArmFor("x") != policy.ArmControl {
		t.Fatal("share 100%: not in control")
	}
}

func TestParseRefusesABadHoldout(t *testing.T) {
	cases := []struct {
		holdout map[string]any
		want    string
	}{
		{map[string]any{"share_percent": -1}, "holdout.share_percent: -1 must be between 0 and 50"},
		{map[string]any{"share_percent": 50.01}, "holdout.share_percent: 50.01 must be between 0 and 50"},
		{map[string]any{"share_percent": 1.234}, "holdout.share_percent: 1.234 has more than two decimals"},
		{map[string]any{"share_percent": 5, "treatment": "silence"}, `holdout.treatment: "silence" must be rules_plain`},
		{map[string]any{"share_percent": 5, "experiment": "a b"}, `holdout.experiment: "a b" must be a plain name`},
		{map[string]any{"share": 5}, "field share not found"},
	}
	for _, c := range cases {
		_, err := policy.Parse(mutated(t, func(m map[string]any) { m["holdout"] = c.holdout }))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("holdout %v: error %v, want %q", c.holdout, err, c.want)
		}
	}
	p, err := policy.Parse(mutated(t, func(m map[string]any) {
		m["holdout"] = map[string]any{"share_percent": 12.5, "treatment": "no_messages"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Holdout.On() || p.Holdout.ControlTreatment() != policy.HoldoutNoMessages {
		t.Fatalf("holdout = %+v", p.Holdout)
	}
	if got, want := p.Holdout.Summary(), "holdout: 12.5% of runs (by invoice, experiment holdout) in the control arm: no_messages"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	if got := defaultPolicy(t).Holdout.Summary(); got != "holdout: off" {
		t.Fatalf("shipped summary %q", got)
	}
}
