package activities

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/segments"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// DecideInput is everything DecideStrategy needs for one step.
type DecideInput struct {
	WorkflowID  string
	InvoiceID   string
	Step        int // 1-based
	TotalSteps  int
	History     CustomerHistory
	Excluded    []recoup.Channel // opted out or undeliverable in this run
	FailureCode string
	AmountMinor int64
	Currency    string
	Now         time.Time
	// ScheduledAt is when the step was due by the schedule (after pauses and holds); zero
	// for runs recorded before it existed.
	ScheduledAt time.Time
	// Channel, when set (support's set-next-channel), is the only channel this step may use,
	// if the customer can be reached on it.
	Channel recoup.Channel
	// Hardship: the customer replied that they cannot pay now; the step offers the plan's
	// extension (within the yearly budget) instead of whatever else was decided.
	Hardship bool `json:",omitempty"`
	// Failures is how many payment failures the run has seen, the first one included (0:
	// recorded before it existed). A decline class whose plan waits for a failed retry
	// (issuer_unavailable) sends nothing while it is 1.
	Failures int `json:",omitempty"`
	// Advice is the run's newest retry advice (State.Retry.Advice; nil: none yet). The
	// prompt states it, and no text may promise a retry that it does not advise after Now.
	Advice *recoup.RetryAdvice `json:",omitempty"`
}

// DecideStrategy asks the model for channel, tone, incentive and message, enforces the
// policy on its answer, and falls back to the deterministic rules on any error, refusal,
// invalid answer or violation. The decision is stored in PostgreSQL. The guardrails are
// the named steps of decideSteps, applied in order.
func (a *DunningActivities) DecideStrategy(ctx context.Context, in DecideInput) (recoup.Decision, error) {
	g := a.newDecision(in, a.Prompts())
	g.log = a.logger(ctx)
	rec := &recordingReads{store: a.Store}
	g.reads = rec
	if err := a.runSteps(ctx, g, decideSteps); err != nil {
		return recoup.Decision{}, err
	}
	d := g.d
	d.Model = g.model
	d.Violations = g.violations
	d.PromptVersion = g.set.Version
	d.PolicyVersion = g.set.PolicyVersion
	d.Variant = g.variant
	d.Holdout = g.holdout
	d.DeciderNote = g.deciderNote()
	d.DeclineClass = g.facts.Decline.Class
	// The allowed-hours window at or after now for the chosen channel (see hours.go).
	c, err := a.Store.GetCustomer(ctx, in.History.CustomerID)
	if err != nil {
		return recoup.Decision{}, err
	}
	w, err := a.sendWindow(c, d.Channel, in.Now)
	if err != nil {
		return recoup.Decision{}, err
	}
	d.SendAt, d.SendUntil = w.NotBefore, w.NotAfter
	inputs, err := g.record(ctx, rec)
	if err != nil {
		return recoup.Decision{}, err
	}
	if err := a.saveDecision(ctx, in, d, inputs); err != nil {
		return recoup.Decision{}, err
	}
	return d, nil
}

// saveDecision stores d as the step's decision; inputs (nil: keep what the row has) are what
// DecideStrategy decided from (RecordedInputs, JSON).
func (a *DunningActivities) saveDecision(ctx context.Context, in DecideInput, d recoup.Decision, inputs []byte) error {
	return a.Store.SaveDecision(ctx, postgres.DecisionRow{
		WorkflowID: in.WorkflowID, CustomerID: in.History.CustomerID, InvoiceID: in.InvoiceID, Step: in.Step,
		Channel: string(d.Channel), Tone: d.Tone, IncentiveKind: d.Incentive.Kind, IncentiveValue: d.Incentive.Value,
		Subject: d.Subject, Message: d.Message, Rationale: d.Rationale, DecidedBy: d.DecidedBy,
		Model: d.Model, PromptVersion: d.PromptVersion, Violations: d.Violations,
		Variant: d.Variant, PolicyVersion: d.PolicyVersion, Inputs: inputs,
	})
}

// decision is a decision in the making: each guardrail step reads it, may change it, and
// notes what it changed (Trace).
type decision struct {
	in         DecideInput
	set        *templates.Set
	reads      historyReads // the customer's sends and offers (nil: the preview reads none)
	pol        *policy.Policy
	facts      policy.Facts
	variant    string
	d          recoup.Decision
	violations []string
	model      string          // the model asked, if any
	answer     recoup.Decision // the model's decision as it answered (before any step overruled it)
	asked      bool            // the model was asked
	reply      openai.Response // the model's raw reply, when it answered
	fallback   string          // why the rules decided although a model is configured
	capped     bool            // over the contact cap: this step sends nothing
	capNote    string          // the rationale of a capped decision
	withdrawn  bool            // the incentive budget withdrew the decision's incentive
	// holdout is the run's holdout arm and holdoutTreatment the control arm's treatment
	// (holdout.go).
	holdout, holdoutTreatment string
	log                       *slog.Logger // nil: nothing logged (the preview)
	Trace                     []GuardrailNote
}

// deciderNote says in one line which decider ran and why (Decision.DeciderNote).
func (g *decision) deciderNote() string {
	if g.d.DecidedBy == recoup.DecidedByLLM {
		return fmt.Sprintf("model %s answered within policy", g.model)
	}
	switch {
	case g.control():
		return fmt.Sprintf("rules: holdout control arm (%s), so no model was asked", g.holdoutTreatment)
	case g.capped:
		return "rules: the contact cap allows no message at this step, so no model was asked"
	case g.facts.Decline.Wait:
		return fmt.Sprintf("rules: decline class %s sends nothing until a retry of the payment has failed, so no model was asked", g.facts.Decline.Class)
	case !g.asked && g.model == "" && g.fallback == "":
		return "rules: no model configured (set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL and OPENAI_MODEL for another OpenAI-compatible endpoint)"
	case !g.asked:
		return "rules: no channel is allowed for this customer, so no model was asked"
	}
	why := map[string]string{
		observability.FallbackError:       "the model call failed",
		observability.FallbackRefusal:     "the model refused",
		observability.FallbackInvalidJSON: "the model's answer did not fit the schema",
		observability.FallbackViolation:   "the model's answer broke the policy",
	}[g.fallback]
	if why == "" {
		why = "the model's answer was not used"
	}
	return fmt.Sprintf("rules: %s (model %s; see violations)", why, g.model)
}

// GuardrailNote says what one guardrail step changed in a decision.
type GuardrailNote struct {
	Step    string // the step's name (decideSteps)
	Changed string
}

func (g *decision) note(step, format string, args ...any) {
	g.Trace = append(g.Trace, GuardrailNote{Step: step, Changed: fmt.Sprintf(format, args...)})
}

func (g *decision) warnRulesDecided() {
	if g.log != nil {
		g.log.Warn("model answer not used; rules policy decided", "step", g.in.Step, "violations", g.violations)
	}
}

func (a *DunningActivities) newDecision(in DecideInput, set *templates.Set) *decision {
	pol, h := set.Policy, in.History
	failures := in.Failures
	if failures == 0 {
		failures = 1 // recorded before Failures existed: as if only the first failure
	}
	decline, _ := set.Decline(in.FailureCode, in.Step, failures)
	decline = decline.WithAdvice(in.Advice, in.Now)
	return &decision{in: in, set: set, pol: pol, variant: pol.VariantFor(h.CustomerID), facts: policy.Facts{
		Step:            in.Step,
		Plan:            h.Plan,
		AllowedChannels: allowedChannels(h, in.Excluded, in.Channel, pol.Channels),
		AmountDue:       money.Format(in.AmountMinor, in.Currency, h.Locale),
		Language:        h.Locale,
		Decline:         decline,
	}}
}

// declinePlan classifies the failure code (declines.yaml), counts and logs once a code the
// table does not know, and keeps a class whose plan says wait (issuer_unavailable before a
// retry failed) from sending: no channel is allowed, so no model is asked.
func (a *DunningActivities) declinePlan(_ context.Context, g *decision, name string) error {
	if c := g.set.Declines.Classify(g.in.FailureCode); !c.Known {
		a.Metrics.DeclineCodeUnknown(c.Namespace)
		if g.log != nil && firstUnknownCode(g.in.FailureCode) {
			g.log.Warn("failure code not in declines.yaml; classed unknown (add it to the table)",
				"failure_code", customerText(g.in.FailureCode), "namespace", c.Namespace)
		}
	}
	if g.facts.Decline.Wait {
		g.facts.AllowedChannels = nil
		g.note(name, "decline class %s: nothing sent until a retry has failed", g.facts.Decline.Class)
	}
	return nil
}

// unknownCodes are the unknown failure codes this process has logged (at most
// maxUnknownCodes, so that a flood of made-up codes cannot grow it without bound).
var (
	unknownCodesMu sync.Mutex
	unknownCodes   = map[string]bool{}
)

const maxUnknownCodes = 1000

// firstUnknownCode says whether code is logged for the first time in this process.
func firstUnknownCode(code string) bool {
	unknownCodesMu.Lock()
	defer unknownCodesMu.Unlock()
	if unknownCodes[code] || len(unknownCodes) >= maxUnknownCodes {
		return false
	}
	unknownCodes[code] = true
	return true
}

// guardrail is one named step of a decision.
type guardrail struct {
	name  string
	apply func(a *DunningActivities, ctx context.Context, g *decision, name string) error
}

// decideSteps are DecideStrategy's steps, in order. previewSteps are those the preview
// shares (it reads no history of sends or offers).
var (
	decideSteps = []guardrail{
		{"decline-plan", (*DunningActivities).declinePlan},
		{"holdout-arm", (*DunningActivities).holdoutArm},
		{"contact-cap", (*DunningActivities).capContacts},
		{"model-within-policy", (*DunningActivities).askModelWithinPolicy},
		{"sms-segments", (*DunningActivities).smsWithinSegments},
		{"rules-fallback", (*DunningActivities).rulesFallback},
		{"contact-cap-rationale", (*DunningActivities).explainContactCap},
		{"hardship-extension", (*DunningActivities).hardshipExtension},
		{"holdout-no-incentive", (*DunningActivities).holdoutNoIncentive},
		{"incentive-budget", (*DunningActivities).incentiveBudget},
		{"text-matches-incentive", (*DunningActivities).textMatchesIncentive},
		{"approval", (*DunningActivities).approvalRequest},
	}
	previewSteps = stepsNamed("decline-plan", "model-within-policy", "sms-segments", "rules-fallback")
)

// stepsNamed returns the steps of decideSteps with these names, in decideSteps' order.
func stepsNamed(names ...string) []guardrail {
	var out []guardrail
	for _, s := range decideSteps {
		if slices.Contains(names, s.name) {
			out = append(out, s)
		}
	}
	return out
}

func (a *DunningActivities) runSteps(ctx context.Context, g *decision, steps []guardrail) error {
	for _, s := range steps {
		if err := s.apply(a, ctx, g, s.name); err != nil {
			return err
		}
	}
	return nil
}

// capContacts: over the contact cap across all of the customer's runs, this step sends
// nothing (no channel is allowed). The window is counted from when the step was due, in
// whole days (ContactCap.CountFrom), so that how late a worker ran a step, or quiet hours
// delayed an earlier message, does not decide whether the step sends.
func (a *DunningActivities) capContacts(ctx context.Context, g *decision, name string) error {
	contactCap := g.pol.ContactCap
	if a.ContactCap != nil {
		contactCap = *a.ContactCap
	}
	due := g.in.ScheduledAt
	if due.IsZero() {
		due = g.in.Now
	}
	since := contactCap.CountFrom(due)
	recent, err := g.reads.CountSends(ctx, g.in.History.CustomerID, since)
	if err != nil {
		return err
	}
	if g.capped = recent >= contactCap.Messages; g.capped {
		g.facts.AllowedChannels = nil
		g.capNote = fmt.Sprintf("contact cap: %d messages to this customer since %s (at most %d within %d days of when this step was due); nothing sent at this step",
			recent, since.UTC().Format(time.RFC3339), contactCap.Messages, contactCap.Days)
		g.note(name, "no channel allowed: %d messages since %s", recent, since.UTC().Format(time.RFC3339))
	}
	return nil
}

// askModelWithinPolicy asks the model (when one is configured and a channel is allowed) and
// keeps its answer only if it passes the policy.
func (a *DunningActivities) askModelWithinPolicy(ctx context.Context, g *decision, name string) error {
	switch {
	case a.LLM != nil && g.control():
		g.note(name, "model not asked: holdout control arm")
	case a.LLM != nil && len(g.facts.AllowedChannels) > 0:
		g.model, g.asked = a.LLM.Model(), true
		g.d, g.violations, g.fallback, g.reply = a.askModel(ctx, g.set, g.variant, g.in, g.facts)
		g.answer = g.d
		if len(g.violations) > 0 {
			g.note(name, "model answer refused: %s", strings.Join(g.violations, "; "))
		}
	case a.LLM != nil:
		g.fallback = observability.FallbackNoChannel
		g.note(name, "model not asked: no channel allowed")
	}
	return nil
}

// smsWithinSegments refuses a model's SMS that would take more than
// templates.MaxSMSSegments segments.
func (a *DunningActivities) smsWithinSegments(_ context.Context, g *decision, name string) error {
	if g.d.DecidedBy != recoup.DecidedByLLM {
		return nil
	}
	if v := a.smsTooLong(g.set, g.d, g.in.History); v != "" {
		g.d, g.violations, g.fallback = recoup.Decision{}, []string{v}, observability.FallbackViolation
		g.note(name, "model answer refused: %s", v)
	}
	return nil
}

// rulesFallback lets the deterministic rules decide when the model's answer is not used.
func (a *DunningActivities) rulesFallback(_ context.Context, g *decision, name string) error {
	if g.fallback != "" {
		a.Metrics.LLMFallback(g.fallback)
	}
	if g.d.DecidedBy == recoup.DecidedByLLM {
		return nil
	}
	d, err := g.pol.RulesDecision(g.facts)
	if err != nil {
		return err
	}
	g.d = d
	if len(g.violations) > 0 {
		g.warnRulesDecided()
	}
	if a.LLM != nil {
		g.note(name, "the rules decided: %s", d.Channel)
	}
	return nil
}

// explainContactCap says in the decision's rationale why a capped step sends nothing.
func (a *DunningActivities) explainContactCap(_ context.Context, g *decision, name string) error {
	if g.capped {
		g.d.Rationale = g.capNote
		g.note(name, "rationale: %s", g.capNote)
	}
	return nil
}

// incentiveBudget withdraws an incentive that would exceed the yearly budget of the
// customer's plan, across all runs.
func (a *DunningActivities) incentiveBudget(ctx context.Context, g *decision, name string) error {
	withdrawn, err := withinBudget(ctx, g.reads, g.pol, g.in.History, &g.d, &g.violations, g.in.Now)
	if err != nil {
		return err
	}
	if g.withdrawn = withdrawn; withdrawn {
		g.note(name, "incentive withdrawn: %s", g.violations[len(g.violations)-1])
	}
	return nil
}

// textMatchesIncentive: the model's text may speak of an incentive just withdrawn; then the
// customer would read an offer that is not made. Its text must pass as it now stands, or
// the rules decide (their texts pass with no incentive: lint checks it).
func (a *DunningActivities) textMatchesIncentive(ctx context.Context, g *decision, name string) error {
	if !g.withdrawn || g.d.DecidedBy != recoup.DecidedByLLM {
		return nil
	}
	d := g.d
	v := append(g.pol.CheckText("subject", d.Subject, d.Incentive, g.facts.AmountDue), g.pol.CheckText("message", d.Message, d.Incentive, g.facts.AmountDue)...)
	if len(v) == 0 {
		return nil
	}
	g.violations = append(g.violations, v...)
	var err error
	if g.d, err = g.pol.RulesDecision(g.facts); err != nil {
		return err
	}
	if _, err := withinBudget(ctx, g.reads, g.pol, g.in.History, &g.d, &g.violations, g.in.Now); err != nil {
		return err
	}
	g.fallback = observability.FallbackViolation
	a.Metrics.LLMFallback(g.fallback)
	g.warnRulesDecided()
	g.note(name, "model text refused (%s); the rules decided", strings.Join(v, "; "))
	return nil
}

// withinBudget withdraws d's incentive when it would exceed the yearly budget of the
// customer's plan across all runs, recording why; it says whether it did.
func (a *DunningActivities) withinBudget(ctx context.Context, pol *policy.Policy, h CustomerHistory, d *recoup.Decision, violations *[]string, now time.Time) (bool, error) {
	return withinBudget(ctx, a.Store, pol, h, d, violations, now)
}

// withinBudget is DunningActivities.withinBudget with the offers read from reads.
func withinBudget(ctx context.Context, reads historyReads, pol *policy.Policy, h CustomerHistory, d *recoup.Decision, violations *[]string, now time.Time) (bool, error) {
	if d.Incentive.Kind == recoup.IncentiveNone || d.Incentive.Kind == "" {
		return false, nil
	}
	offered, err := reads.OfferedSince(ctx, h.CustomerID, d.Incentive.Kind, now.AddDate(-1, 0, 0))
	if err != nil {
		return false, err
	}
	caps := pol.CapsFor(h.Plan)
	budget := caps.DiscountBudgetPerYear
	if d.Incentive.Kind == recoup.IncentiveExtensionDays {
		budget = caps.ExtensionBudgetPerYear
	}
	if offered+d.Incentive.Value <= budget {
		return false, nil
	}
	*violations = append(*violations, fmt.Sprintf("yearly %s budget of plan %q: %d already offered, %d more would exceed %d; no incentive",
		d.Incentive.Kind, h.Plan, offered, d.Incentive.Value, budget))
	d.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
	return true, nil
}

// smsTooLong renders an SMS decision the way it would go out and says why it is refused when
// it takes more than templates.MaxSMSSegments segments (e.g. non-GSM characters).
func (a *DunningActivities) smsTooLong(set *templates.Set, d recoup.Decision, h CustomerHistory) string {
	if d.Channel != recoup.ChannelSMS {
		return ""
	}
	sms, err := set.SMS(templates.MessageData{Message: d.Message, Tone: d.Tone, Language: h.Locale,
		Incentive:  templates.Incentive{Kind: d.Incentive.Kind, Value: d.Incentive.Value, Expires: templates.FormatDate(time.Now(), h.Locale)},
		PaymentURL: a.link(a.PaymentURL, "inv_0000000000", h.CustomerID)})
	if err != nil {
		return "SMS template: " + err.Error()
	}
	if c := segments.Of(sms); c.Segments > templates.MaxSMSSegments {
		return fmt.Sprintf("the SMS would take %d %s segments, more than %d", c.Segments, c.Encoding, templates.MaxSMSSegments)
	}
	return ""
}

// buildPrompt renders the system and user messages the model receives for a step.
func buildPrompt(set *templates.Set, variant string, in DecideInput, f policy.Facts) (system, user string, err error) {
	pol := set.Policy
	caps := pol.CapsFor(f.Plan)
	allowed := make([]string, len(f.AllowedChannels))
	for i, c := range f.AllowedChannels {
		allowed[i] = string(c)
	}
	h := in.History
	d := set.WithDecline(templates.PromptData{
		Step: in.Step, TotalSteps: in.TotalSteps, Plan: customerText(h.Plan), TenureDays: h.TenureDays,
		LifetimeValue: money.Format(h.LifetimeValueMinor, in.Currency, h.Locale), AmountDue: f.AmountDue,
		FailureCode: customerText(in.FailureCode), PaymentsSucceeded: h.PaymentsSucceeded, PaymentsFailed: h.PaymentsFailed,
		EarlierRuns: h.EarlierRuns, EarlierRunsRecovered: h.EarlierRunsRecovered, MessagesThisRun: h.MessagesThisRun,
		AllowedChannels: allowed, Language: customerText(h.Locale), Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars,
	}, f.Decline.Class)
	// The plan and the run's retry advice together say whether a retry may be promised.
	d.PromiseRetry = !f.Decline.NoRetryPromise
	d.RetryAdvice = templates.RetryAdviceLine(in.Advice, in.Now, h.TimeZone)
	return set.Prompt(variant, d)
}

// askModel returns an LLM decision, or violations explaining why there is none and the
// fallback reason (an observability.Fallback* constant).
func (a *DunningActivities) askModel(ctx context.Context, set *templates.Set, variant string, in DecideInput, f policy.Facts) (recoup.Decision, []string, string, openai.Response) {
	pol := set.Policy
	system, user, err := buildPrompt(set, variant, in, f)
	if err != nil {
		return recoup.Decision{}, []string{"prompt template: " + err.Error()}, observability.FallbackError, openai.Response{}
	}
	start := time.Now()
	resp, err := a.LLM.Complete(ctx, openai.Request{
		System: system, User: user, SchemaName: "dunning_decision", Schema: pol.Schema(),
		Temperature: 0.2, MaxTokens: 800,
	})
	a.Metrics.LLMRequest(time.Since(start), resp.PromptTokens, resp.CompletionTokens, err)
	if err != nil {
		return recoup.Decision{}, []string{"model call failed: " + err.Error()}, observability.FallbackError, openai.Response{}
	}
	if resp.Refusal != "" {
		return recoup.Decision{}, []string{"model refused: " + truncate(resp.Refusal, 200)}, observability.FallbackRefusal, resp
	}
	var ans policy.Answer
	if err := openai.DecodeStrict(resp.Content, &ans); err != nil {
		return recoup.Decision{}, []string{"model answer is not valid JSON for the schema: " + err.Error()}, observability.FallbackInvalidJSON, resp
	}
	d, violations := pol.Check(ans, f)
	if len(violations) > 0 {
		return recoup.Decision{}, violations, observability.FallbackViolation, resp
	}
	return d, nil, "", resp
}

// customerText is data that came from outside (billing, the customer): control characters
// stripped, one line, at most 64 characters. It goes to the model only inside the delimited
// <customer_data> block, never as instructions.
func customerText(s string) string {
	s = strings.Join(strings.Fields(policy.Sanitize(s)), " ")
	return truncate(s, 64)
}

func allowedChannels(h CustomerHistory, excluded []recoup.Channel, only recoup.Channel, enabled []recoup.Channel) []recoup.Channel {
	var out []recoup.Channel
	for _, c := range []struct {
		ch        recoup.Channel
		reachable bool
	}{{recoup.ChannelEmail, h.EmailReachable}, {recoup.ChannelSMS, h.SMSReachable}} {
		if c.reachable && !slices.Contains(excluded, c.ch) && slices.Contains(enabled, c.ch) {
			out = append(out, c.ch)
		}
	}
	if only != "" && slices.Contains(out, only) {
		return []recoup.Channel{only}
	}
	return out
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
