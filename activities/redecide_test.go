package activities_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/prompts"
)

// editedPrompts is the shipped prompt set with policy.yaml edited by the old → new pairs.
func editedPrompts(t *testing.T, edits ...string) *templates.Set {
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
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("policy.yaml has no %q", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := templates.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// recordedInputs reads back what DecideStrategy stored with the step's decision.
func recordedInputs(t *testing.T, f *fixture, step int) (string, activities.RecordedInputs) {
	t.Helper()
	var raw string
	if err := f.st.Pool().QueryRow(context.Background(),
		`SELECT inputs::text FROM decisions WHERE workflow_id = $1 AND step = $2`, wfID, step).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	rec, err := activities.ParseRecordedInputs([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return raw, rec
}

// A decision keeps what it was decided from — the facts, the model's raw answer, the prompt
// versions — and no contact data; decided again with the same prompt set it comes out the
// same, and with a lower discount cap the model's recorded answer is refused by the new policy.
func TestRecordedDecisionIsDecidedAgainWithAnEditedPromptSet(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "discount_percent", 10, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	d, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t))
	if err != nil {
		t.Fatal(err)
	}
	raw, rec := recordedInputs(t, f, 1)
	for _, pii := range []string{"ada@example.com", "+14155550123", "Ada", "Lovelace"} {
		if strings.Contains(raw, pii) {
			t.Errorf("the recorded inputs contain %q: %s", pii, raw)
		}
	}
	if rec.Decide.AmountMinor != 4900 || rec.Decide.Currency != "USD" || rec.Decide.History.Plan != "pro" || rec.Decide.FailureCode != "card_declined" {
		t.Fatalf("recorded facts = %+v", rec.Decide)
	}
	if rec.Model != "gpt-fake" || !strings.Contains(rec.ModelAnswer, `"discount_percent"`) || rec.PromptVersion != d.PromptVersion {
		t.Fatalf("recorded model answer = %q by %q, prompt %q", rec.ModelAnswer, rec.Model, rec.PromptVersion)
	}
	if rec.Decided.Channel != recoup.ChannelSMS || rec.Decided.Incentive.Value != 10 || rec.Decided.DecidedBy != recoup.DecidedByLLM {
		t.Fatalf("recorded choice = %+v", rec.Decided)
	}
	if _, ok := rec.Offered[recoup.IncentiveExtensionDays]; !ok {
		t.Fatalf("the yearly offers of every incentive kind are recorded, got %v", rec.Offered)
	}

	same, err := activities.Redecider{Set: f.acts.Prompts()}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if same.Decider != activities.RedecidedByRecorded || same.Decision.Channel != recoup.ChannelSMS ||
		same.Decision.Incentive != d.Incentive || same.Decision.DecidedBy != recoup.DecidedByLLM || len(same.Violations) != 0 {
		t.Fatalf("the same prompt set decided %+v by %s (violations %v), want the recorded decision", same.Decision, same.Decider, same.Violations)
	}

	lower := editedPrompts(t, "pro:        {max_discount_percent: 10", "pro:        {max_discount_percent: 5")
	re, err := activities.Redecider{Set: lower}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if re.Decider != activities.RedecidedByRecorded || re.Decision.DecidedBy != recoup.DecidedByRules ||
		re.Decision.Channel != recoup.ChannelEmail || re.Decision.Incentive.Kind != recoup.IncentiveNone {
		t.Fatalf("with a 5%% cap: %+v by %s", re.Decision, re.Decider)
	}
	if !slices.Contains(re.Violations, `discount 10% is outside 1..5% for plan "pro"`) {
		t.Fatalf("violations = %q", re.Violations)
	}
	if re.Rules.Channel != recoup.ChannelEmail || re.Rules.Tone != "friendly" {
		t.Fatalf("the new rules' decision = %+v", re.Rules)
	}

	// With a model configured, it is asked again with the new prompts.
	o.SetReply(answer("email", "helpful", "discount_percent", 5, "Your payment", "Your card was declined. Updating it takes a minute."))
	c, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	asked, err := activities.Redecider{Set: lower, LLM: c}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if asked.Decider != activities.RedecidedByModel || asked.Decision.DecidedBy != recoup.DecidedByLLM ||
		asked.Decision.Channel != recoup.ChannelEmail || asked.Decision.Incentive.Value != 5 || len(o.Requests()) != 2 {
		t.Fatalf("with the model: %+v by %s after %d requests", asked.Decision, asked.Decider, len(o.Requests()))
	}
}

// A tighter contact cap is checked against the count the decision recorded: over it, the step
// sends nothing.
func TestRedecideChecksTheRecordedContactCount(t *testing.T) {
	f := newFixture(t)
	if _, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t)); err != nil {
		t.Fatal(err)
	}
	_, rec := recordedInputs(t, f, 1)
	if rec.RecentSends != 0 || rec.RecentSince.IsZero() {
		t.Fatalf("recorded contact count %d since %v", rec.RecentSends, rec.RecentSince)
	}
	rec.RecentSends = 1 // as if one message had gone out in the window
	tight := editedPrompts(t, "contact_cap:\n  messages: 2\n  days: 7", "contact_cap:\n  messages: 1\n  days: 3")
	re, err := activities.Redecider{Set: tight}.Decide(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if re.Decision.Channel != recoup.ChannelNone || !strings.Contains(re.Decision.Rationale, "contact cap") {
		t.Fatalf("over the new cap: %+v", re.Decision)
	}
	if same, err := (activities.Redecider{Set: f.acts.Prompts()}).Decide(context.Background(), rec); err != nil || same.Decision.Channel != recoup.ChannelEmail {
		t.Fatalf("under the shipped cap: %+v, %v", same.Decision, err)
	}
}

func TestParseRecordedInputsRefusesWhatItCannotUse(t *testing.T) {
	for _, in := range []string{`{"schema": 99}`, `{"schema": 1`, `{}`} {
		if _, err := activities.ParseRecordedInputs([]byte(in)); !errors.Is(err, activities.ErrNotRedecidable) {
			t.Errorf("%s: error %v", in, err)
		}
	}
}

// An approval outcome overwrites the decision row but keeps what it was decided from.
func TestOverwritingADecisionKeepsItsInputs(t *testing.T) {
	f := newFixture(t)
	if _, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t)); err != nil {
		t.Fatal(err)
	}
	_, rec := recordedInputs(t, f, 1)
	in := decideInput(f, t)
	if _, err := f.acts.ReleaseHeldMessage(context.Background(), activities.ReleaseHeldInput{WorkflowID: in.WorkflowID, InvoiceID: in.InvoiceID,
		Step: 1, History: in.History, AmountMinor: in.AmountMinor, Currency: in.Currency, Now: in.Now,
		Held: recoup.Decision{Step: 1, Channel: recoup.ChannelEmail, Tone: "friendly", DecidedBy: recoup.DecidedByRules}, Why: "rejected"}); err != nil {
		t.Fatal(err)
	}
	var channel string
	if err := f.st.Pool().QueryRow(context.Background(), `SELECT channel FROM decisions WHERE workflow_id = $1 AND step = 1`, wfID).Scan(&channel); err != nil {
		t.Fatal(err)
	}
	_, after := recordedInputs(t, f, 1)
	if channel != "none" || after.Decided.Channel != recoup.ChannelEmail || after.Decided.Channel != rec.Decided.Channel || after.Decide.Now != rec.Decide.Now {
		t.Fatalf("row channel %s; the inputs changed: %+v → %+v", channel, rec.Decided, after.Decided)
	}
}

// The worker's RECOUP_CONTACT_CAP override applies to a re-decision too (Redecider.ContactCap),
// so a diff run with the worker's environment reports prompt changes, not the override: a
// step the worker sent under a raised cap is not reported as capped by the set's own cap.
func TestRedecideAppliesTheWorkersContactCapOverride(t *testing.T) {
	f := newFixture(t)
	if _, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t)); err != nil {
		t.Fatal(err)
	}
	_, rec := recordedInputs(t, f, 1)
	rec.RecentSends = 5 // over the shipped cap of 2 in 7 days, as under the demo's 1000/7
	capped, err := activities.Redecider{Set: f.acts.Prompts()}.Decide(context.Background(), rec)
	if err != nil || capped.Decision.Channel != recoup.ChannelNone {
		t.Fatalf("without the override: %+v, %v", capped.Decision, err)
	}
	raised := activities.Redecider{Set: f.acts.Prompts(), ContactCap: &policy.ContactCap{Messages: 1000, Days: 7}}
	re, err := raised.Decide(context.Background(), rec)
	if err != nil || re.Decision.Channel != recoup.ChannelEmail {
		t.Fatalf("with the worker's override 1000/7: %+v, %v", re.Decision, err)
	}
}
