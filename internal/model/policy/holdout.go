package policy

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// The holdout's control treatments (Holdout.Treatment).
const (
	// HoldoutRulesPlain: the rules' plain reminders, with no incentive and no model.
	HoldoutRulesPlain = "rules_plain"
	// HoldoutNoMessages: no message from Recoup at all (billing's own emails continue).
	HoldoutNoMessages = "no_messages"
)

// The arms a run can be in (Holdout.ArmFor). A run started while the holdout was off is in
// neither ("").
const (
	ArmControl   = "control"
	ArmTreatment = "treatment"
)

// DefaultHoldoutExperiment is the name hashed with the invoice id when the holdout section
// names none.
const DefaultHoldoutExperiment = "holdout"

// MaxHoldoutSharePercent is the largest holdout share a policy may set. A larger share leaves
// too few runs in the treatment arm to compare against, and at 100% every run is held out:
// with no_messages Recoup would silently stop dunning altogether (a typo of 100 for 10).
const MaxHoldoutSharePercent = 50

// holdoutBuckets is the resolution of SharePercent: 0.01 percentage points.
const holdoutBuckets = 10000

// Holdout is the policy's holdout: a share of runs, chosen by invoice, that gets the control
// treatment instead of Recoup's full treatment, so that uplift is measured against a real
// control. Absent or share_percent 0: off.
type Holdout struct {
	// Experiment is hashed with the invoice id (default "holdout"); renaming it reshuffles
	// which invoices are held out.
	Experiment string `yaml:"experiment"`
	// SharePercent is the share of runs in the control arm, 0 to MaxHoldoutSharePercent (50),
	// at most two decimals.
	SharePercent float64 `yaml:"share_percent"`
	// Treatment is what the control arm gets: rules_plain (default) or no_messages.
	Treatment string `yaml:"treatment"`
}

// On says whether runs are assigned to arms at all.
func (h Holdout) On() bool { return h.SharePercent > 0 }

// ControlTreatment is the control arm's treatment (rules_plain when none is named).
func (h Holdout) ControlTreatment() string {
	if h.Treatment == "" {
		return HoldoutRulesPlain
	}
	return h.Treatment
}

// ArmFor returns the invoice's arm: ArmControl for a hash of the experiment's name and the
// invoice id that falls within SharePercent, ArmTreatment otherwise, "" when the holdout is
// off. The same invoice gets the same arm as long as the name and share stay the same.
func (h Holdout) ArmFor(invoiceID string) string {
	if !h.On() {
		return ""
	}
	name := h.Experiment
	if name == "" {
		name = DefaultHoldoutExperiment
	}
	f := fnv.New64a()
	f.Write([]byte(name + "\x00" + invoiceID))
	if f.Sum64()%holdoutBuckets < uint64(math.Round(h.SharePercent*holdoutBuckets/100)) {
		return ArmControl
	}
	return ArmTreatment
}

// validateHoldout checks the holdout section.
func (p *Policy) validateHoldout(bad *problems) {
	h := p.Holdout
	if math.IsNaN(h.SharePercent) || h.SharePercent < 0 || h.SharePercent > MaxHoldoutSharePercent {
		bad.add("holdout.share_percent: %v must be between 0 and %d (0 turns the holdout off; above %d%% too few runs get Recoup's treatment to compare against, and at 100%% every run is held out)",
			h.SharePercent, MaxHoldoutSharePercent, MaxHoldoutSharePercent)
	} else if s := h.SharePercent * 100; math.Abs(s-math.Round(s)) > 1e-6 {
		bad.add("holdout.share_percent: %v has more than two decimals", h.SharePercent)
	}
	switch h.Treatment {
	case "", HoldoutRulesPlain, HoldoutNoMessages:
	default:
		bad.add("holdout.treatment: %q must be %s (the rules' plain reminders, no incentive, no model) or %s (no message from Recoup)",
			h.Treatment, HoldoutRulesPlain, HoldoutNoMessages)
	}
	if h.Experiment != "" && strings.ContainsAny(h.Experiment, "/\\ \x00") {
		bad.add("holdout.experiment: %q must be a plain name", h.Experiment)
	}
}

// Summary says in one line what the holdout does, for `starter prompts lint`.
func (h Holdout) Summary() string {
	if !h.On() {
		return "holdout: off"
	}
	name := h.Experiment
	if name == "" {
		name = DefaultHoldoutExperiment
	}
	return fmt.Sprintf("holdout: %s%% of runs (by invoice, experiment %s) in the control arm: %s",
		strconv.FormatFloat(h.SharePercent, 'f', -1, 64), name, h.ControlTreatment())
}
