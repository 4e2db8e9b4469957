package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// One pro customer (10% max discount, 20% a year) had three steps decided last month without
// any incentive. Asked again (--ask-model), the model offers 10% at every step: re-decided in
// turn, the first two discounts use up the plan's yearly 20% and the third is withdrawn by
// the budget, as it would have been had the new prompts been live.
func TestPromptsDiffYearlyBudgetCountsTheNewDecisionsOffers(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	w := newModelWorld(t, st, modelAnswer("email", "friendly", "none", 0), "cus_p")
	acts, o, now := w.acts, w.openai, w.now
	for i := 1; i <= 3; i++ {
		h, err := acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{CustomerID: "cus_p", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		inv := fmt.Sprintf("inv_p%d", i)
		if _, err := acts.DecideStrategy(ctx, activities.DecideInput{WorkflowID: "dunning-" + inv, InvoiceID: inv, Step: 1, TotalSteps: 4,
			History: h, FailureCode: "card_declined", AmountMinor: 10000, Currency: "USD", Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	o.SetReply(modelAnswer("email", "friendly", "discount_percent", 10))
	d := &deps{st: st, cfg: config.Config{LLM: w.llmCfg}}
	out, err := runWithDeps(d, "prompts", "diff", "--since", "30d", "--json", "--ask-model", promptDir(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Redecided != 3 || len(got.Cost) != 1 {
		t.Fatalf("redecided %d, cost %+v", got.Redecided, got.Cost)
	}
	if c := got.Cost[0]; c.After != 2 || c.AfterMinor != 2000 || got.BudgetWithdraw[1] != 1 {
		t.Errorf("pro plan, 20%%/year: the diff grants %d discounts costing %s and withdraws %d; want 2 granted ($20.00), 1 withdrawn by the yearly budget",
			c.After, c.AfterText, got.BudgetWithdraw[1])
	}
}

// The edit under preview turns the holdout on (50%, the most a policy may hold out, with
// no_messages: Recoup sends nothing to the control arm). Each run is re-decided in the arm
// the new policy assigns its invoice, as for a new run: every run changes arm (from off),
// and the control arm's steps change channel to none.
func TestPromptsDiffShowsWhatAHoldoutEditDoes(t *testing.T) {
	st := fakes.MustStore(t)
	seedDecisions(t, st)
	dir := promptDir(t, "  share_percent: 0\n  treatment: rules_plain", "  share_percent: 50\n  treatment: no_messages")
	set, err := templates.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	arms := map[string]int{}
	for _, inv := range []string{"inv_a", "inv_b", "inv_c"} {
		arms[set.Policy.Holdout.ArmFor(inv)]++
	}
	if arms[policy.ArmControl] == 0 || arms[policy.ArmTreatment] == 0 {
		t.Fatalf("the seeded invoices fall in one arm (%v): the test shows nothing", arms)
	}
	out, err := runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--json", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	c := got.Changed
	if got.Redecided != 3 || c.Channel != arms[policy.ArmControl] || c.Arm != 3 ||
		c.Arms["off → control"] != arms[policy.ArmControl] || c.Arms["off → treatment"] != arms[policy.ArmTreatment] {
		t.Errorf("holdout 50%% no_messages, arms %v: %d re-decided, changes %+v; want every run to change arm and the control arm's to send nothing",
			arms, got.Redecided, c)
	}
	for move := range c.Channels {
		if !strings.HasSuffix(move, " → "+string(recoup.ChannelNone)) {
			t.Errorf("channel moves %v: want only moves to %q (the control arm sends nothing)", c.Channels, recoup.ChannelNone)
		}
	}
}
