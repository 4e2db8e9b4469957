package policy_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// A holdout above half the runs is refused, with the limit in the error: at share_percent
// 100 every run is in the control arm, and with no_messages Recoup would silently stop
// dunning altogether (nothing sent, no treatment arm to compare with) — a typo'd 100 for 10
// must not pass `starter prompts lint`. Half the runs is accepted.
func TestParseRefusesAHoldoutOfMoreThanHalfTheRuns(t *testing.T) {
	for _, share := range []float64{100, 51} {
		_, err := policy.Parse(mutated(t, func(m map[string]any) {
			m["holdout"] = map[string]any{"share_percent": share, "treatment": "no_messages"}
		}))
		if err == nil || !strings.Contains(err.Error(), "must be between 0 and 50") {
			t.Errorf("share_percent %v: error %v, want it refused above 50%%", share, err)
		}
	}
	p, err := policy.Parse(mutated(t, func(m map[string]any) {
		m["holdout"] = map[string]any{"share_percent": policy.MaxHoldoutSharePercent, "treatment": "rules_plain"}
	}))
	if err != nil || p.Holdout.SharePercent != 50 {
		t.Errorf("share_percent 50: %v, %+v; want accepted", err, p)
	}
}
