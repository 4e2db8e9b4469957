package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// review18: one pro customer (10% max discount, 20% a year) had three steps decided last
// month without any incentive. The edited prompts make the model offer 10% at every step:
// re-decided together, the third 10% exceeds the plan's yearly 20% and would be withdrawn.
// The diff re-decides each step against the offers recorded under the OLD prompts (0), so
// it reports all three discounts granted, no budget withdrawal, and 50% more cost than
// billing would ever be told of.
func TestReview18PromptsDiffBudgetCompoundsAcrossTheMonthsDecisions(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	o := fakes.NewOpenAI(t, modelAnswer("email", "friendly", "none", 0))
	llmCfg := openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second}
	llm, err := openai.New(llmCfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	acts := &activities.DunningActivities{Base: activities.Base{Store: st, Prompts: func() *templates.Set { return set }},
		PaymentURL: "https://pay.example/{invoice_id}", Clock: func() time.Time { return now }, LLM: llm}
	yes := true
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_p", Email: "p@example.com", Locale: "en-US",
		TimeZone: "UTC", Plan: "pro", EmailConsentSet: &yes, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
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
	d := &deps{st: st, cfg: config.Config{LLM: llmCfg}}
	out, err := runWithDeps(d, "prompts", "diff", "--since", "30d", "--json", promptDir(t))
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

// review18: the edit under preview turns the holdout on (100%, no_messages: Recoup sends
// nothing). The diff re-decides with the arm recorded under the OLD policy (off), so it
// reports that no decision changes: marketing previews "no effect" for a change that
// silences every new run.
func TestReview18PromptsDiffShowsWhatAHoldoutEditDoes(t *testing.T) {
	st := fakes.MustStore(t)
	seedDecisions(t, st)
	dir := promptDir(t, "  share_percent: 0\n  treatment: rules_plain", "  share_percent: 100\n  treatment: no_messages")
	out, err := runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--json", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Redecided != 3 || got.Changed.Channel != 3 {
		t.Errorf("holdout 100%% no_messages: %d re-decided, %d change channel (to none); want 3 of 3: %+v", got.Redecided, got.Changed.Channel, got.Changed)
	}
}
