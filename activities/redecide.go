package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"slices"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// RecordedInputsSchema is the version of RecordedInputs' JSON form (decisions.inputs
// "schema"). A reader refuses versions it does not know.
const RecordedInputsSchema = 1

// RecordedInputs is what DecideStrategy decided a step from, stored with the decision
// (decisions.inputs) so that `starter prompts diff` can decide it again, offline, with an
// edited prompt set. It holds no email address, phone number or name: DecideInput carries
// none (the prompt never needs them; a re-decision renders messages without a first name).
type RecordedInputs struct {
	Schema int         `json:"schema"`
	Decide DecideInput `json:"decide"` // the facts: history summary, invoice, amount, step, schedule, decline, advice
	// Variant is the prompt variant the customer had.
	Variant string `json:"variant"`
	// What the contact cap and the incentive budget read from the customer's history: the
	// messages counted against the cap (since RecentSince) and, per incentive kind, what was
	// offered in the year before Decide.Now.
	RecentSends int            `json:"recent_sends"`
	RecentSince time.Time      `json:"recent_since"`
	Offered     map[string]int `json:"offered"`
	// The model asked and its raw reply (empty when no model was asked or its call failed).
	Model        string `json:"model,omitempty"`
	ModelAnswer  string `json:"model_answer,omitempty"`
	ModelRefusal string `json:"model_refusal,omitempty"`
	// The run's holdout arm and the control arm's treatment, as recorded when the run was
	// planned (empty: holdout off, or recorded before it existed).
	Holdout          string `json:"holdout,omitempty"`
	HoldoutTreatment string `json:"holdout_treatment,omitempty"`
	// The prompt set the decision was made with.
	PromptVersion string `json:"prompt_version"`
	PolicyVersion string `json:"policy_version"`
	// Decided is what the decider decided (an approval may later overwrite the row).
	Decided RecordedChoice `json:"decided"`
}

// RecordedChoice is the part of a decision that a prompt change can change.
type RecordedChoice struct {
	Channel    recoup.Channel   `json:"channel"`
	Tone       string           `json:"tone"`
	Incentive  recoup.Incentive `json:"incentive"`
	DecidedBy  string           `json:"decided_by"`
	Violations []string         `json:"violations,omitempty"`
}

// ErrNotRedecidable is returned by ParseRecordedInputs for inputs it cannot use.
var ErrNotRedecidable = errors.New("not re-decidable")

// ParseRecordedInputs reads decisions.inputs.
func ParseRecordedInputs(b []byte) (RecordedInputs, error) {
	var r RecordedInputs
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: inputs are not valid JSON: %v", ErrNotRedecidable, err)
	}
	if r.Schema != RecordedInputsSchema {
		return r, fmt.Errorf("%w: inputs schema %d is not %d", ErrNotRedecidable, r.Schema, RecordedInputsSchema)
	}
	return r, nil
}

// historyReads are the reads of a customer's history that a decision makes: live from
// PostgreSQL (recorded as they are read), or as recorded (a re-decision).
type historyReads interface {
	CountSends(ctx context.Context, customerID string, since time.Time) (int, error)
	OfferedSince(ctx context.Context, customerID, kind string, since time.Time) (int, error)
	RunHoldout(ctx context.Context, runKey string) (arm, treatment string, err error)
}

// recordingReads reads from store and keeps what it read.
type recordingReads struct {
	store   *postgres.Store
	recent  int
	since   time.Time
	offered map[string]int
	holdout [2]string // arm, treatment
}

func (r *recordingReads) RunHoldout(ctx context.Context, runKey string) (string, string, error) {
	arm, treatment, err := r.store.RunHoldout(ctx, runKey)
	r.holdout = [2]string{arm, treatment}
	return arm, treatment, err
}

func (r *recordingReads) CountSends(ctx context.Context, customerID string, since time.Time) (int, error) {
	n, err := r.store.CountSends(ctx, customerID, since)
	r.recent, r.since = n, since
	return n, err
}

func (r *recordingReads) OfferedSince(ctx context.Context, customerID, kind string, since time.Time) (int, error) {
	n, err := r.store.OfferedSince(ctx, customerID, kind, since)
	if r.offered == nil {
		r.offered = map[string]int{}
	}
	r.offered[kind] = n
	return n, err
}

// recordedReads answers with what was recorded. The contact-cap count is the recorded one,
// counted over the window of the policy the decision was made with.
type recordedReads struct{ rec *RecordedInputs }

func (r recordedReads) CountSends(context.Context, string, time.Time) (int, error) {
	return r.rec.RecentSends, nil
}

func (r recordedReads) RunHoldout(context.Context, string) (string, string, error) {
	return r.rec.Holdout, r.rec.HoldoutTreatment, nil
}

func (r recordedReads) OfferedSince(_ context.Context, _, kind string, _ time.Time) (int, error) {
	return r.rec.Offered[kind], nil
}

// record is what g was decided from, as JSON (RecordedInputs). When the decision did not read
// the yearly offers of every incentive kind, it reads them all (one query), so that a
// re-decision choosing another incentive finds its budget.
func (g *decision) record(ctx context.Context, r *recordingReads) ([]byte, error) {
	kinds := []string{recoup.IncentiveDiscountPercent, recoup.IncentiveExtensionDays}
	if slices.ContainsFunc(kinds, func(k string) bool { _, ok := r.offered[k]; return !ok }) {
		all, err := r.store.OfferedByKindSince(ctx, g.in.History.CustomerID, g.in.Now.AddDate(-1, 0, 0))
		if err != nil {
			return nil, err
		}
		if r.offered == nil {
			r.offered = map[string]int{}
		}
		for _, k := range kinds {
			if _, ok := r.offered[k]; !ok {
				r.offered[k] = all[k]
			}
		}
	}
	rec := RecordedInputs{Schema: RecordedInputsSchema, Decide: g.in, Variant: g.variant,
		RecentSends: r.recent, RecentSince: r.since, Offered: r.offered,
		Holdout: r.holdout[0], HoldoutTreatment: r.holdout[1],
		PromptVersion: g.set.Version, PolicyVersion: g.set.PolicyVersion,
		Decided: RecordedChoice{Channel: g.d.Channel, Tone: g.d.Tone, Incentive: g.d.Incentive,
			DecidedBy: g.d.DecidedBy, Violations: g.violations}}
	if g.asked {
		rec.Model, rec.ModelAnswer, rec.ModelRefusal = g.model, g.reply.Content, g.reply.Refusal
	}
	return json.Marshal(rec)
}

// recordedModel answers every request with a recorded reply: re-deciding without a model
// checks what the model said then against the new prompt set's guardrails.
type recordedModel struct{ model, content, refusal string }

func (m recordedModel) Model() string { return m.model }

func (m recordedModel) Complete(context.Context, openai.Request) (openai.Response, error) {
	return openai.Response{Content: m.content, Refusal: m.refusal, Model: m.model}, nil
}

// Who decides again (Redecision.Decider).
const (
	RedecidedByModel    = "model"           // the configured model was asked with the new prompts
	RedecidedByRecorded = "recorded answer" // the model's recorded answer, checked by the new guardrails
	RedecidedByRules    = "rules"           // the rules alone (no model answer to use)
)

// Redecider decides recorded steps again with another prompt set, offline: it reads no
// database, sends nothing, stores nothing and calls no billing. With an LLM the model is
// asked again with the new prompts; without one, each recorded model answer goes through the
// new guardrails instead.
type Redecider struct {
	Set        *templates.Set
	LLM        LLM    // nil: check the recorded answers
	PaymentURL string // for the SMS length check (the link is part of the SMS)
	// ContactCap overrides the set's contact cap, as RECOUP_CONTACT_CAP does in the worker,
	// so that a diff run with the worker's environment compares prompts, not settings.
	ContactCap *policy.ContactCap
}

// Redecision is what the new prompt set decides for a recorded step.
type Redecision struct {
	Decision recoup.Decision // what would be sent
	Rules    recoup.Decision // the new rules' decision for the step (the fallback)
	Decider  string          // RedecidedBy*
	// Violations are what the new guardrails refused or withdrew (the model's answer, an
	// incentive over the yearly budget), as DecideStrategy records them.
	Violations []string
	Trace      []GuardrailNote
}

// redecideSteps are DecideStrategy's steps but the approval (which reads the customer's SMS
// history and changes no channel, tone or incentive).
var redecideSteps = func() []guardrail {
	var out []guardrail
	for _, s := range decideSteps {
		if s.name != "approval" {
			out = append(out, s)
		}
	}
	return out
}()

// Decide decides rec again with r.Set. The run's holdout arm is the one r.Set's holdout
// assigns the invoice, as PlanRun would for a new run (not the arm recorded under the old
// policy), so that a holdout edit shows what it does; Redecision.Decision.Holdout is the arm.
// The yearly offers the budget reads are rec.Offered: a caller re-deciding a customer's
// decisions in turn sets them to what the new decisions offered before (`prompts diff`).
func (r Redecider) Decide(ctx context.Context, rec RecordedInputs) (Redecision, error) {
	rec.Holdout, rec.HoldoutTreatment = "", ""
	if h := r.Set.Policy.Holdout; h.On() {
		rec.Holdout, rec.HoldoutTreatment = h.ArmFor(rec.Decide.InvoiceID), h.ControlTreatment()
	}
	a := &DunningActivities{Base: Base{Prompts: func() *templates.Set { return r.Set }}, PaymentURL: r.PaymentURL, ContactCap: r.ContactCap}
	out := Redecision{Decider: RedecidedByRules}
	switch {
	case r.LLM != nil:
		a.LLM = r.LLM
	case rec.ModelAnswer != "" || rec.ModelRefusal != "":
		a.LLM = recordedModel{model: rec.Model, content: rec.ModelAnswer, refusal: rec.ModelRefusal}
	}
	g := a.newDecision(rec.Decide, r.Set)
	g.reads = recordedReads{&rec}
	if err := a.runSteps(ctx, g, redecideSteps); err != nil {
		return out, err
	}
	if g.asked {
		out.Decider = RedecidedByRecorded
		if r.LLM != nil {
			out.Decider = RedecidedByModel
		}
	}
	d := g.d
	d.Model, d.Violations, d.PromptVersion, d.PolicyVersion, d.Variant = g.model, g.violations, r.Set.Version, r.Set.PolicyVersion, g.variant
	d.Holdout = g.holdout
	out.Decision, out.Violations, out.Trace = d, g.violations, g.Trace
	rules, err := g.pol.RulesDecision(g.facts)
	if err != nil {
		return out, err
	}
	var withdrawn []string
	if _, err := withinBudget(ctx, g.reads, g.pol, g.in.History, &rules, &withdrawn, g.in.Now); err != nil {
		return out, err
	}
	out.Rules = rules
	return out, nil
}
