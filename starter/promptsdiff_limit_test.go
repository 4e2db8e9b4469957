package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// One run offers the same 10% discount at step 1 and again at step 2 (the pro plan's yearly
// 20% allows both). The report counts a run's incentive cost once, as the invoice's amount ×
// its largest discount (runs.go: max(o.value)); the diff's "cost before" must be the same
// $4.90, not $9.80 added per decision, so that an unchanged prompt set compares with the page.
func TestPromptsDiffCostsARepeatedOfferOnceAsTheReportDoes(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	w := newModelWorld(t, st, modelAnswer("email", "friendly", "discount_percent", 10), "cus_r")
	acts, now := w.acts, w.now
	for step := 1; step <= 2; step++ {
		h, err := acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{CustomerID: "cus_r", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := acts.DecideStrategy(ctx, activities.DecideInput{WorkflowID: "dunning-inv_r", InvoiceID: "inv_r", Step: step, TotalSteps: 4,
			History: h, FailureCode: "card_declined", AmountMinor: 4900, Currency: "USD", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if dec.Incentive.Value != 10 {
			t.Fatalf("step %d decided %+v; the seed wants 10%% off at both steps", step, dec.Incentive)
		}
	}
	out, err := runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--json", promptDir(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Cost) != 1 || got.Cost[0].BeforeMinor != 490 {
		t.Errorf("one run of a 4900-cent invoice offered 10%% twice: diff cost before %+v; the report counts 490", got.Cost)
	}
}

// --limit (10,000 offline by default, 200 with --ask-model) keeps the newest decisions of the
// period. When it cuts, the diff says so: how many of the period's decisions were left out and
// when the ones read start (on a busy deployment the "last month" may be its last day or two,
// and the yearly budgets of customers whose earlier decisions were cut start from offers made
// under the old prompts).
func TestPromptsDiffSaysWhenTheLimitLeftDecisionsOut(t *testing.T) {
	st := fakes.MustStore(t)
	seedDecisions(t, st)
	text, err := runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--limit", "2", promptDir(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.Contains(text, "--limit 2 left out the 2 oldest of the period's 4 decisions: the ones read start at ") {
		t.Errorf("4 decisions in the period, 2 read: the diff does not say the limit cut it:\n%s", text)
	}
	out, err := runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--limit", "2", "--json", promptDir(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Decisions != 2 || got.InPeriod != 4 || got.LeftOut != 2 || got.ReadFrom == nil || got.ReadFrom.Before(got.Since) {
		t.Errorf("--json: read %d, in period %d, left out %d, read from %v (since %v); want 2, 4, 2, after since",
			got.Decisions, got.InPeriod, got.LeftOut, got.ReadFrom, got.Since)
	}
	// Without a cut nothing is said.
	text, err = runWithDeps(&deps{st: st}, "prompts", "diff", "--since", "30d", "--limit", "4", promptDir(t))
	if err != nil || strings.Contains(text, "left out") {
		t.Errorf("--limit 4 of 4: %v\n%s", err, text)
	}
}
