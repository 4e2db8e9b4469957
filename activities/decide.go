package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
}

// DecideStrategy asks the model for channel, tone, incentive and message, enforces the
// policy on its answer, and falls back to the deterministic rules on any error, refusal,
// invalid answer or violation. The decision is stored in PostgreSQL.
func (a *Activities) DecideStrategy(ctx context.Context, in DecideInput) (recoup.Decision, error) {
	set := a.Prompts()
	pol := set.Policy
	h := in.History
	facts := policy.Facts{
		Step:            in.Step,
		Plan:            h.Plan,
		AllowedChannels: allowedChannels(h, in.Excluded, in.Channel, pol.Channels),
		AmountDue:       money.Format(in.AmountMinor, in.Currency, h.Locale),
		Language:        h.Locale,
	}
	variant := pol.VariantFor(h.CustomerID)
	var (
		d          recoup.Decision
		violations []string
		model      string
		fallback   string // why the rules decided although a model is configured
	)
	// Contact cap across all of the customer's runs: over it, this step sends nothing. The
	// window is counted from when the step was due, in whole days (ContactCap.CountFrom), so
	// that how late a worker ran a step, or quiet hours delayed an earlier message, does not
	// decide whether the step sends.
	contactCap := pol.ContactCap
	if a.ContactCap != nil {
		contactCap = *a.ContactCap
	}
	due := in.ScheduledAt
	if due.IsZero() {
		due = in.Now
	}
	since := contactCap.CountFrom(due)
	recent, err := a.Store.CountSends(ctx, h.CustomerID, since)
	if err != nil {
		return recoup.Decision{}, err
	}
	capped := recent >= contactCap.Messages
	if capped {
		facts.AllowedChannels = nil
	}
	if a.LLM != nil && len(facts.AllowedChannels) > 0 {
		model = a.LLM.Model()
		d, violations, fallback = a.askModel(ctx, set, variant, in, facts)
		if d.DecidedBy == recoup.DecidedByLLM {
			if v := a.smsTooLong(set, d, h); v != "" {
				d, violations, fallback = recoup.Decision{}, []string{v}, observability.FallbackViolation
			}
		}
	} else if a.LLM != nil {
		fallback = observability.FallbackNoChannel
	}
	if fallback != "" {
		a.Metrics.LLMFallback(fallback)
	}
	if d.DecidedBy != recoup.DecidedByLLM {
		if d, err = pol.RulesDecision(facts); err != nil {
			return recoup.Decision{}, err
		}
		if len(violations) > 0 {
			a.logger(ctx).Warn("model answer not used; rules policy decided", "step", in.Step, "violations", violations)
		}
	}
	if capped {
		d.Rationale = fmt.Sprintf("contact cap: %d messages to this customer since %s (at most %d within %d days of when this step was due); nothing sent at this step",
			recent, since.UTC().Format(time.RFC3339), contactCap.Messages, contactCap.Days)
	}
	// The yearly incentive budget of the customer's plan, across all runs.
	withdrawn, err := a.withinBudget(ctx, pol, h, &d, &violations, in.Now)
	if err != nil {
		return recoup.Decision{}, err
	}
	if withdrawn && d.DecidedBy == recoup.DecidedByLLM {
		// The model's text may speak of the incentive just withdrawn; then the customer would
		// read an offer that is not made. Its text must pass as it now stands, or the rules
		// decide (their texts pass with no incentive: lint checks it).
		if v := append(pol.CheckText("subject", d.Subject, d.Incentive, facts.AmountDue), pol.CheckText("message", d.Message, d.Incentive, facts.AmountDue)...); len(v) > 0 {
			violations = append(violations, v...)
			if d, err = pol.RulesDecision(facts); err != nil {
				return recoup.Decision{}, err
			}
			if _, err := a.withinBudget(ctx, pol, h, &d, &violations, in.Now); err != nil {
				return recoup.Decision{}, err
			}
			a.Metrics.LLMFallback(observability.FallbackViolation)
			a.logger(ctx).Warn("model answer not used; rules policy decided", "step", in.Step, "violations", violations)
		}
	}
	d.Model = model
	d.Violations = violations
	d.PromptVersion = set.Version
	d.PolicyVersion = set.PolicyVersion
	d.Variant = variant
	// The allowed-hours window at or after now for the chosen channel (see hours.go).
	c, err := a.Store.GetCustomer(ctx, h.CustomerID)
	if err != nil {
		return recoup.Decision{}, err
	}
	w, err := a.sendWindow(c, d.Channel, in.Now)
	if err != nil {
		return recoup.Decision{}, err
	}
	d.SendAt, d.SendUntil = w.NotBefore, w.NotAfter
	err = a.Store.SaveDecision(ctx, postgres.DecisionRow{
		WorkflowID: in.WorkflowID, CustomerID: h.CustomerID, InvoiceID: in.InvoiceID, Step: in.Step,
		Channel: string(d.Channel), Tone: d.Tone, IncentiveKind: d.Incentive.Kind, IncentiveValue: d.Incentive.Value,
		Subject: d.Subject, Message: d.Message, Rationale: d.Rationale, DecidedBy: d.DecidedBy,
		Model: d.Model, PromptVersion: d.PromptVersion, Violations: d.Violations,
		Variant: d.Variant, PolicyVersion: d.PolicyVersion,
	})
	if err != nil {
		return recoup.Decision{}, err
	}
	return d, nil
}

// withinBudget withdraws d's incentive when it would exceed the yearly budget of the
// customer's plan across all runs, recording why; it says whether it did.
func (a *Activities) withinBudget(ctx context.Context, pol *policy.Policy, h CustomerHistory, d *recoup.Decision, violations *[]string, now time.Time) (bool, error) {
	if d.Incentive.Kind == recoup.IncentiveNone || d.Incentive.Kind == "" {
		return false, nil
	}
	offered, err := a.Store.OfferedSince(ctx, h.CustomerID, d.Incentive.Kind, now.AddDate(-1, 0, 0))
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
func (a *Activities) smsTooLong(set *templates.Set, d recoup.Decision, h CustomerHistory) string {
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
	return set.Prompt(variant, templates.PromptData{
		Step: in.Step, TotalSteps: in.TotalSteps, Plan: customerText(h.Plan), TenureDays: h.TenureDays,
		LifetimeValue: money.Format(h.LifetimeValueMinor, in.Currency, h.Locale), AmountDue: f.AmountDue,
		FailureCode: customerText(in.FailureCode), PaymentsSucceeded: h.PaymentsSucceeded, PaymentsFailed: h.PaymentsFailed,
		EarlierRuns: h.EarlierRuns, EarlierRunsRecovered: h.EarlierRunsRecovered, MessagesThisRun: h.MessagesThisRun,
		AllowedChannels: allowed, Language: customerText(h.Locale), Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars,
	})
}

// askModel returns an LLM decision, or violations explaining why there is none and the
// fallback reason (an observability.Fallback* constant).
func (a *Activities) askModel(ctx context.Context, set *templates.Set, variant string, in DecideInput, f policy.Facts) (recoup.Decision, []string, string) {
	pol := set.Policy
	system, user, err := buildPrompt(set, variant, in, f)
	if err != nil {
		return recoup.Decision{}, []string{"prompt template: " + err.Error()}, observability.FallbackError
	}
	start := time.Now()
	resp, err := a.LLM.Complete(ctx, openai.Request{
		System: system, User: user, SchemaName: "dunning_decision", Schema: pol.Schema(),
		Temperature: 0.2, MaxTokens: 800,
	})
	a.Metrics.LLMRequest(time.Since(start), resp.PromptTokens, resp.CompletionTokens, err)
	if err != nil {
		return recoup.Decision{}, []string{"model call failed: " + err.Error()}, observability.FallbackError
	}
	if resp.Refusal != "" {
		return recoup.Decision{}, []string{"model refused: " + truncate(resp.Refusal, 200)}, observability.FallbackRefusal
	}
	var ans policy.Answer
	if err := openai.DecodeStrict(resp.Content, &ans); err != nil {
		return recoup.Decision{}, []string{"model answer is not valid JSON for the schema: " + err.Error()}, observability.FallbackInvalidJSON
	}
	d, violations := pol.Check(ans, f)
	if len(violations) > 0 {
		return recoup.Decision{}, violations, observability.FallbackViolation
	}
	return d, nil, ""
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
	defer func() {
		out = slices.DeleteFunc(out, func(c recoup.Channel) bool { return !slices.Contains(enabled, c) })
		if only != "" && slices.Contains(out, only) {
			out = []recoup.Channel{only}
		}
	}()
	if h.EmailReachable && !slices.Contains(excluded, recoup.ChannelEmail) {
		out = append(out, recoup.ChannelEmail)
	}
	if h.SMSReachable && !slices.Contains(excluded, recoup.ChannelSMS) {
		out = append(out, recoup.ChannelSMS)
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
