package activities

import (
	"context"
	"fmt"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// holdoutArm reads the run's holdout arm, recorded when the run was planned (PlanRun): a run
// in the control arm gets the control treatment at every step, whatever the policy says now.
// Under rules_plain the model is not asked and the rules decide; under no_messages no channel
// is allowed, so the step sends nothing (like a step over the contact cap). Retry advice and
// the run's lifecycle do not depend on the arm. A re-decision (`starter prompts diff`) uses the
// arm the new policy's holdout assigns the invoice (Redecider.Decide).
func (a *DunningActivities) holdoutArm(ctx context.Context, g *decision, name string) error {
	if g.reads == nil { // the preview: no run
		return nil
	}
	arm, treatment, err := g.reads.RunHoldout(ctx, g.in.WorkflowID)
	if err != nil {
		return err
	}
	g.holdout, g.holdoutTreatment = arm, treatment
	if arm != policy.ArmControl {
		return nil
	}
	g.variant = "" // the control arm receives no prompt variant
	if treatment == policy.HoldoutNoMessages {
		g.facts.AllowedChannels = nil
		g.note(name, "holdout control arm (%s): no channel allowed", treatment)
		return nil
	}
	g.note(name, "holdout control arm (%s): the rules decide, without incentive", treatment)
	return nil
}

// control says whether the decision is for a run in the holdout's control arm.
func (g *decision) control() bool { return g.holdout == policy.ArmControl }

// holdoutNoIncentive: a control-arm step carries no incentive (neither the rules' nor a
// hardship extension) and says why it sends what it sends.
func (a *DunningActivities) holdoutNoIncentive(_ context.Context, g *decision, name string) error {
	if !g.control() {
		return nil
	}
	if k := g.d.Incentive.Kind; k != recoup.IncentiveNone && k != "" {
		g.note(name, "incentive %s %d withdrawn: holdout control arm", k, g.d.Incentive.Value)
	}
	g.d.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
	if g.holdoutTreatment == policy.HoldoutNoMessages {
		g.d.Channel, g.d.Subject, g.d.Message = recoup.ChannelNone, "", ""
		g.d.Rationale = fmt.Sprintf("holdout control arm (%s): Recoup sends nothing at step %d; billing's own emails continue", g.holdoutTreatment, g.in.Step)
		return nil
	}
	g.d.Rationale = fmt.Sprintf("holdout control arm (%s): %s", g.holdoutTreatment, g.d.Rationale)
	return nil
}
