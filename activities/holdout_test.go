package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
)

// withHoldout makes every run planned from now on fall in the holdout's control arm (share
// 100%) with the given treatment; share 0 turns it off.
func withHoldout(t *testing.T, f *fixture, share float64, treatment string) {
	t.Helper()
	set := *f.acts.Prompts()
	pol := *set.Policy
	pol.Holdout = policy.Holdout{Experiment: "holdout-test", SharePercent: share, Treatment: treatment}
	set.Policy = &pol
	f.acts.Prompts = func() *templates.Set { return &set }
}

func planRun(t *testing.T, f *fixture) activities.PlanRunResult {
	t.Helper()
	res, err := f.acts.PlanRun(context.Background(), activities.PlanRunInput{WorkflowID: wfID, InvoiceID: "inv_1",
		CustomerID: "cus_1", StartedAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A run in the control arm with rules_plain gets the rules' message: no model call, no
// incentive (not even the extension a hardship reply would bring), no approval hold.
func TestControlArmRulesPlainAsksNoModelAndOffersNoIncentive(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "discount_percent", 10, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	withHoldout(t, f, 100, policy.HoldoutRulesPlain)
	if res := planRun(t, f); res.Holdout != policy.ArmControl || res.HoldoutTreatment != policy.HoldoutRulesPlain {
		t.Fatalf("PlanRun = %+v, want the control arm under rules_plain", res)
	}
	in := decideInput(f, t)
	in.Hardship = true                    // treatment would offer the plan's extension
	for _, step := range []int{1, 3, 4} { // steps 3 and 4 of the rules carry an incentive
		in.Step = step
		d, err := f.acts.DecideStrategy(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.DecidedBy != recoup.DecidedByRules || d.Incentive.Kind != recoup.IncentiveNone || !d.Channel.Valid() ||
			d.Holdout != policy.ArmControl || d.Approval != nil || d.Variant != "" {
			t.Fatalf("step %d: decision = %+v, want the rules' message without incentive", step, d)
		}
		if d.DeciderNote != "rules: holdout control arm (rules_plain), so no model was asked" {
			t.Errorf("step %d: decider note = %q", step, d.DeciderNote)
		}
	}
	if n := len(o.Requests()); n != 0 {
		t.Fatalf("the model was asked %d times for a control-arm run", n)
	}
}

// A run in the control arm with no_messages decides "no channel" at every step, and the
// decision says why.
func TestControlArmNoMessagesSendsNothing(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("email", "friendly", "none", 0, "Hi", "Your card was declined."))
	f.useLLM(t, o, 5*time.Second)
	withHoldout(t, f, 100, policy.HoldoutNoMessages)
	planRun(t, f)
	in := decideInput(f, t)
	for step := 1; step <= 4; step++ {
		in.Step = step
		d, err := f.acts.DecideStrategy(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Channel != recoup.ChannelNone || d.Incentive.Kind != recoup.IncentiveNone || d.Message != "" || d.Holdout != policy.ArmControl {
			t.Fatalf("step %d: decision = %+v, want nothing sent", step, d)
		}
		if want := "holdout control arm (no_messages): Recoup sends nothing"; len(d.Rationale) < len(want) || d.Rationale[:len(want)] != want {
			t.Errorf("step %d: rationale = %q", step, d.Rationale)
		}
	}
	if n := len(o.Requests()); n != 0 {
		t.Fatalf("the model was asked %d times for a control-arm run", n)
	}
}

// The arm is decided once, when the run is planned: turning the holdout off (or on) later
// does not move a running run to the other arm; the treatment arm decides as usual.
func TestHoldoutArmIsKeptForTheRun(t *testing.T) {
	f := newFixture(t)
	withHoldout(t, f, 100, policy.HoldoutRulesPlain)
	planRun(t, f)
	withHoldout(t, f, 0, "")
	if res := planRun(t, f); res.Holdout != policy.ArmControl {
		t.Fatalf("re-planned run: arm %q, want control kept", res.Holdout)
	}
	in := decideInput(f, t)
	in.Hardship = true
	if d, err := f.acts.DecideStrategy(context.Background(), in); err != nil || d.Incentive.Kind != recoup.IncentiveNone {
		t.Fatalf("decision = %+v, %v; want the control arm's (no incentive)", d, err)
	}

	g := newFixture(t)
	withHoldout(t, g, 0.01, policy.HoldoutRulesPlain) // inv_1 hashes outside 0.01%
	if res := planRun(t, g); res.Holdout != policy.ArmTreatment {
		t.Fatalf("arm %q, want treatment", res.Holdout)
	}
	in = decideInput(g, t)
	in.Hardship = true
	d, err := g.acts.DecideStrategy(context.Background(), in)
	if err != nil || d.Incentive.Kind != recoup.IncentiveExtensionDays || d.Holdout != policy.ArmTreatment {
		t.Fatalf("treatment decision = %+v, %v; want the hardship extension", d, err)
	}
}

// A control-arm decision records its arm with its inputs. `starter prompts diff` decides it
// again in the arm the new policy's holdout assigns the invoice, as PlanRun would for a new
// run: still held out, the control arm (no model asked, no incentive); with the holdout
// turned off, in no arm (the model asked).
func TestAControlArmDecisionIsDecidedAgainAsTheControlArm(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "discount_percent", 10, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	withHoldout(t, f, 100, policy.HoldoutRulesPlain)
	planRun(t, f)
	in := decideInput(f, t)
	in.Hardship = true
	if _, err := f.acts.DecideStrategy(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	_, rec := recordedInputs(t, f, 1)
	if rec.Holdout != policy.ArmControl || rec.HoldoutTreatment != policy.HoldoutRulesPlain {
		t.Fatalf("recorded arm %q/%q, want control/rules_plain", rec.Holdout, rec.HoldoutTreatment)
	}
	c, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	re, err := activities.Redecider{Set: f.acts.Prompts(), LLM: c}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if re.Decision.DecidedBy != recoup.DecidedByRules || re.Decision.Incentive.Kind != recoup.IncentiveNone ||
		re.Decision.Holdout != policy.ArmControl || len(o.Requests()) != 0 {
		t.Fatalf("re-decided %+v by %s after %d model requests; want the control arm's rules without incentive",
			re.Decision, re.Decider, len(o.Requests()))
	}
	withHoldout(t, f, 0, policy.HoldoutRulesPlain)
	off, err := activities.Redecider{Set: f.acts.Prompts(), LLM: c}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if off.Decision.Holdout != "" || off.Decider != activities.RedecidedByModel || len(o.Requests()) != 1 {
		t.Fatalf("holdout off: re-decided %+v by %s after %d model requests; want the model asked, no arm",
			off.Decision, off.Decider, len(o.Requests()))
	}
}
