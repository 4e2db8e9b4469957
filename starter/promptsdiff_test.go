package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/prompts"
)

func modelAnswer(channel, tone, kind string, value int) string {
	b, _ := json.Marshal(map[string]any{"channel": channel, "tone": tone,
		"incentive": map[string]any{"kind": kind, "value": value}, "subject": "Your payment",
		"message": "Your card was declined. Updating it takes a minute.", "rationale": "a nudge"})
	return string(b)
}

// promptDir copies the shipped prompt set and applies the old → new edits to policy.yaml.
func promptDir(t *testing.T, edits ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, prompts.Default); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "policy.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(edits); i += 2 {
		if strings.Count(s, edits[i]) != 1 {
			t.Fatalf("policy.yaml has %d of %q", strings.Count(s, edits[i]), edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// seedDecisions records, through the real DecideStrategy, three decisions with the shipped
// prompts — two by the model (pro plan: SMS with 10% off; email with 5% off, for a customer
// already offered 15% this year) and one by the
// rules (step 2: SMS) — and a decision recorded before inputs were kept, and one older than
// a month. It returns the fake model.
func seedDecisions(t *testing.T, st *postgres.Store) *fakes.OpenAI {
	t.Helper()
	ctx := context.Background()
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	o := fakes.NewOpenAI(t, modelAnswer("sms", "friendly", "discount_percent", 10))
	llm, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	acts := &activities.DunningActivities{Base: activities.Base{Store: st, Prompts: func() *templates.Set { return set }},
		PaymentURL: "https://pay.example/{invoice_id}", Clock: func() time.Time { return now }}
	yes := true
	for _, id := range []string{"cus_a", "cus_b", "cus_c"} {
		if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: id, Name: "Ada Lovelace", Email: id + "@example.com",
			Phone: "+14155550123", Locale: "en-US", TimeZone: "UTC", Plan: "pro", EmailConsentSet: &yes, SMSConsentSet: &yes, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	decide := func(customer string, step int, model bool) {
		t.Helper()
		acts.LLM = nil
		if model {
			acts.LLM = llm
		}
		h, err := acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{CustomerID: customer, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		inv := "inv_" + strings.TrimPrefix(customer, "cus_")
		if _, err := acts.DecideStrategy(ctx, activities.DecideInput{WorkflowID: "dunning-" + inv, InvoiceID: inv, Step: step, TotalSteps: 4,
			History: h, FailureCode: "card_declined", AmountMinor: 4900, Currency: "USD", Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	// cus_b was offered 15% this year: with the 5% below, the pro plan's yearly 20% is reached.
	if err := st.SaveOffer(ctx, postgres.Offer{OfferKey: "offer-prev", WorkflowID: "dunning-inv_prev", InvoiceID: "inv_prev", CustomerID: "cus_b",
		Kind: "discount_percent", Value: 15, ExpiresAt: now.AddDate(0, 0, 14)}); err != nil {
		t.Fatal(err)
	}
	decide("cus_a", 1, true)
	o.SetReply(modelAnswer("email", "helpful", "discount_percent", 5))
	decide("cus_b", 1, true)
	decide("cus_c", 2, false)
	for _, old := range []struct {
		wf  string
		age string
	}{{"dunning-inv_old", "1 day"}, {"dunning-inv_older", "40 days"}} {
		if err := st.SaveDecision(ctx, postgres.DecisionRow{WorkflowID: old.wf, CustomerID: "cus_a", InvoiceID: "inv_x", Step: 1,
			Channel: "email", Tone: "friendly", IncentiveKind: "none", Message: "m", Rationale: "r", DecidedBy: "rules", PromptVersion: "v0"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `UPDATE decisions SET created_at = now() - $2::interval WHERE workflow_id = $1`, old.wf, old.age); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func decisionsSnapshot(t *testing.T, st *postgres.Store) string {
	t.Helper()
	var s string
	if err := st.Pool().QueryRow(context.Background(),
		`SELECT string_agg(workflow_id || step || channel || incentive_value || created_at || coalesce(inputs::text, ''), '|' ORDER BY workflow_id) FROM decisions`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Lowering the pro plan's discount cap to 8% and its yearly discount budget to 18%, and moving
// the rules' step 2 to email: the model's 10% answer is refused by the new policy (the rules
// decide: email, no incentive), the 5% answer loses its incentive to the yearly budget (15%
// already offered), the rules' step-2 SMS becomes an email; the cost of discounts falls from
// $7.35 to $0.00; the old decision is not re-decidable; nothing is written.
func TestPromptsDiffWithoutModelRechecksRecordedAnswers(t *testing.T) {
	st := fakes.MustStore(t)
	seedDecisions(t, st)
	dir := promptDir(t,
		"pro:        {max_discount_percent: 10, max_extension_days: 14, discount_budget_percent_per_year: 20",
		"pro:        {max_discount_percent: 8, max_extension_days: 14, discount_budget_percent_per_year: 18",
		"  - channel: sms\n    tone: helpful", "  - channel: email\n    tone: helpful")
	before := decisionsSnapshot(t, st)
	d := &deps{st: st}
	out, err := runWithDeps(d, "prompts", "diff", "--since", "30d", "--json", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Decisions != 4 || got.Redecided != 3 || got.NotRedecidable[notRecorded] != 1 {
		t.Fatalf("read %d, re-decided %d, not %v", got.Decisions, got.Redecided, got.NotRedecidable)
	}
	if got.Mode != activities.RedecidedByRecorded || got.RedecidedBy[activities.RedecidedByRecorded] != 2 || got.RedecidedBy[activities.RedecidedByRules] != 1 {
		t.Fatalf("mode %q, by %v", got.Mode, got.RedecidedBy)
	}
	c := got.Changed
	if c.Channel != 2 || c.Channels["sms → email"] != 2 || c.Tone != 0 || c.Incentive != 2 || c.Any != 3 {
		t.Fatalf("changed = %+v", c)
	}
	if len(got.Cost) != 1 || got.Cost[0].BeforeText != "$7.35" || got.Cost[0].AfterText != "$0.00" || got.Cost[0].Before != 2 || got.Cost[0].After != 0 {
		t.Fatalf("cost = %+v", got.Cost)
	}
	if got.BudgetWithdraw != [2]int{0, 1} || got.ViolationTotal != 2 || got.RecordedTotal != 0 {
		t.Fatalf("withdrawn %v, violated %d (recorded %d)", got.BudgetWithdraw, got.ViolationTotal, got.RecordedTotal)
	}
	violations := map[string]diffExample{}
	for _, g := range got.Violations {
		if g.Count != 1 || len(g.Examples) != 1 {
			t.Fatalf("violations = %+v", got.Violations)
		}
		violations[g.Examples[0].WorkflowID] = g.Examples[0]
	}
	if len(violations) != 2 || violations["dunning-inv_a"].After != `discount 10% is outside 1..8% for plan "pro"` ||
		violations["dunning-inv_b"].After != `yearly discount_percent budget of plan "pro": 15 already offered, 5 more would exceed 18; no incentive` {
		t.Fatalf("violations = %+v", got.Violations)
	}
	var incentive bool
	for _, e := range got.Examples {
		if e.Change == "incentive" && e.WorkflowID == "dunning-inv_a" && e.Before == "discount_percent 10" && e.After == "none" {
			incentive = true
		}
	}
	if !incentive {
		t.Fatalf("examples = %+v", got.Examples)
	}
	if after := decisionsSnapshot(t, st); after != before {
		t.Fatalf("the diff changed the decisions table:\n%s\n%s", before, after)
	}

	// --limit keeps the newest decisions: the two last decided.
	out, err = runWithDeps(d, "prompts", "diff", "--since", "30d", "--json", "--limit", "2", dir)
	if err != nil {
		t.Fatal(err)
	}
	var limited promptDiff
	if err := json.Unmarshal([]byte(out), &limited); err != nil {
		t.Fatal(err)
	}
	if limited.Decisions != 2 || limited.Redecided != 2 || limited.Changed.Channel != 1 || limited.Changed.Incentive != 1 {
		t.Fatalf("--limit 2: %+v", limited)
	}

	// The same as a table.
	text, err := runWithDeps(d, "prompts", "diff", "--since", "30d", dir)
	if err != nil {
		t.Fatal(err)
	}
	text = strings.Join(strings.Fields(text), " ") // the tables' spacing aside
	for _, want := range []string{
		"no model configured: each recorded model answer is checked",
		"decisions: 4 read, 3 re-decided (recorded answer 2, rules 1), 1 not re-decidable",
		"1 recorded before inputs were kept",
		"channel 2 (sms → email: 2)",
		"incentive 2",
		"dunning-inv_a step 1: discount_percent 10 → none",
		"USD 3 2 0 $7.35 $0.00",
		"incentives withdrawn by a plan's yearly budget: 0 → 1",
		"1× discount N% is outside N..N% for plan \"…\" (recorded: 0)",
		"pro 8% 18% 14 days 30 days",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the diff lacks %q:\n%s", want, text)
		}
	}
}

// With a model configured, the diff stays offline unless told otherwise: no model call, the
// recorded answers are re-checked. With --ask-model the model is asked again with the new
// prompts for every decision whose step allows a channel, after a line saying how many calls
// it will make at most.
func TestPromptsDiffAsksTheConfiguredModelOnlyWhenTold(t *testing.T) {
	st := fakes.MustStore(t)
	o := seedDecisions(t, st)
	asked := len(o.Requests())
	o.SetReply(modelAnswer("email", "firm", "none", 0))
	d := &deps{st: st, cfg: config.Config{LLM: openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second}}}
	out, err := runWithDeps(d, "prompts", "diff", "--since", "30d", "--json", promptDir(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var offline promptDiff
	if err := json.Unmarshal([]byte(out), &offline); err != nil {
		t.Fatal(err)
	}
	if offline.Mode != activities.RedecidedByRecorded || offline.ModelCalls != 0 || len(o.Requests()) != asked ||
		offline.Changed.Any != 0 || !strings.Contains(offline.ModeNote, "offline, no model call") {
		t.Fatalf("without --ask-model: mode %q (%s), %d model requests, changes %+v; want the recorded answers re-checked, no call",
			offline.Mode, offline.ModeNote, len(o.Requests())-asked, offline.Changed)
	}

	var stderr bytes.Buffer
	var stdout strings.Builder
	err = execute(context.Background(), &app{getenv: unreachable, stdout: &stdout, stderr: &stderr, d: d},
		[]string{"prompts", "diff", "--since", "30d", "--json", "--ask-model", promptDir(t)})
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if want := "prompts diff: asking model gpt-fake again: at most 3 calls (one per re-decidable decision of 4 read; --limit 200)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
	var got promptDiff
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatal(err)
	}
	if got.Mode != activities.RedecidedByModel || got.RedecidedBy[activities.RedecidedByModel] != 3 || len(o.Requests())-asked != 3 || got.ModelCalls != 3 {
		t.Fatalf("mode %q, by %v, %d requests (%d announced)", got.Mode, got.RedecidedBy, len(o.Requests())-asked, got.ModelCalls)
	}
	// Every decision becomes a firm email without incentive: a (sms, friendly, 10%), b
	// (email, helpful, 5%), c (sms, helpful).
	if c := got.Changed; c.Channel != 2 || c.Tone != 3 || c.Incentive != 2 || c.Any != 3 {
		t.Fatalf("changed = %+v", c)
	}
	if got.Cost[0].AfterText != "$0.00" {
		t.Fatalf("cost = %+v", got.Cost)
	}
}

func TestPromptsDiffRefusesBadInput(t *testing.T) {
	st := fakes.MustStore(t)
	d := &deps{st: st}
	broken := promptDir(t, "tones: [friendly, helpful, firm, urgent]", "tones: []")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"prompts", "diff", filepath.Join(t.TempDir(), "missing")}, "is not a prompt directory"},
		{[]string{"prompts", "diff", "--since", "thirty days", promptDir(t)}, `--since: "thirty days" is not a duration like 30d`},
		{[]string{"prompts", "diff", "--since", "-3d", promptDir(t)}, "--since"},
		{[]string{"prompts", "diff", "--limit", "0", promptDir(t)}, "--limit must be at least 1"},
		{[]string{"prompts", "diff"}, "DIR"},
		{[]string{"prompts", "diff", broken}, "problems in the prompt set"},
		{[]string{"prompts", "diff", "--ask-model", promptDir(t)}, "--ask-model needs a model configured"},
	} {
		out, err := runWithDeps(d, c.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v (exit %d), want %q\n%s", c.args, err, exitCode(err), c.want, out)
		}
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "72h": 72 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseSince(in); err != nil || got != want {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "d", "30", "30 d", "-1h"} {
		if _, err := parseSince(in); err == nil {
			t.Errorf("parseSince(%q) accepted", in)
		}
	}
}

// modelWorld is the decision activities with the shipped prompt set and a fake OpenAI that
// answers answer, clocked at now, with one pro customer id (email only) who can be decided
// for: what the diff tests record decisions through.
type modelWorld struct {
	acts   *activities.DunningActivities
	openai *fakes.OpenAI
	llmCfg openai.Config
	now    time.Time
}

func newModelWorld(t *testing.T, st *postgres.Store, answer, customerID string) modelWorld {
	t.Helper()
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	o := fakes.NewOpenAI(t, answer)
	cfg := openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second}
	llm, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	acts := &activities.DunningActivities{Base: activities.Base{Store: st, Prompts: func() *templates.Set { return set }},
		PaymentURL: "https://pay.example/{invoice_id}", Clock: func() time.Time { return now }, LLM: llm}
	yes := true
	if _, err := st.UpsertCustomer(context.Background(), postgres.Customer{CustomerID: customerID, Email: customerID + "@example.com",
		Locale: "en-US", TimeZone: "UTC", Plan: "pro", EmailConsentSet: &yes, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return modelWorld{acts: acts, openai: o, llmCfg: cfg, now: now}
}
