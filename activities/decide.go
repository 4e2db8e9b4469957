package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/llm"
	"github.com/recoup-dunning/recoup/internal/money"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/policy"
	"github.com/recoup-dunning/recoup/internal/store"
	"github.com/recoup-dunning/recoup/internal/templates"
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
		AllowedChannels: allowedChannels(h, in.Excluded, in.Channel),
		AmountDue:       money.Format(in.AmountMinor, in.Currency, h.Locale),
	}
	var (
		d          recoup.Decision
		violations []string
		model      string
		fallback   string // why the rules decided although a model is configured
	)
	if a.LLM != nil && len(facts.AllowedChannels) > 0 {
		model = a.LLM.Model()
		d, violations, fallback = a.askModel(ctx, set, in, facts)
	} else if a.LLM != nil {
		fallback = observability.FallbackNoChannel
	}
	if fallback != "" {
		a.Metrics.LLMFallback(fallback)
	}
	if d.DecidedBy != recoup.DecidedByLLM {
		var err error
		if d, err = pol.RulesDecision(facts); err != nil {
			return recoup.Decision{}, err
		}
		if len(violations) > 0 {
			a.logger(ctx).Warn("model answer not used; rules policy decided", "step", in.Step, "violations", violations)
		}
	}
	d.Model = model
	d.Violations = violations
	d.PromptVersion = set.Version
	d.SendAt = in.Now
	if !a.IgnoreQuietHours {
		loc, err := time.LoadLocation(h.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		d.SendAt = pol.QuietHours.NextAllowed(in.Now, loc)
	}
	err := a.Store.SaveDecision(ctx, store.DecisionRow{
		WorkflowID: in.WorkflowID, CustomerID: h.CustomerID, InvoiceID: in.InvoiceID, Step: in.Step,
		Channel: string(d.Channel), Tone: d.Tone, IncentiveKind: d.Incentive.Kind, IncentiveValue: d.Incentive.Value,
		Subject: d.Subject, Message: d.Message, Rationale: d.Rationale, DecidedBy: d.DecidedBy,
		Model: d.Model, PromptVersion: d.PromptVersion, Violations: d.Violations,
	})
	if err != nil {
		return recoup.Decision{}, err
	}
	return d, nil
}

// askModel returns an LLM decision, or violations explaining why there is none and the
// fallback reason (an observability.Fallback* constant).
func (a *Activities) askModel(ctx context.Context, set *templates.Set, in DecideInput, f policy.Facts) (recoup.Decision, []string, string) {
	pol := set.Policy
	caps := pol.CapsFor(f.Plan)
	allowed := make([]string, len(f.AllowedChannels))
	for i, c := range f.AllowedChannels {
		allowed[i] = string(c)
	}
	h := in.History
	system, user, err := set.Prompt(templates.PromptData{
		Step: in.Step, TotalSteps: in.TotalSteps, Plan: policy.Sanitize(h.Plan), TenureDays: h.TenureDays,
		LifetimeValue: money.Format(h.LifetimeValueMinor, in.Currency, h.Locale), AmountDue: f.AmountDue,
		FailureCode: policy.Sanitize(in.FailureCode), PaymentsSucceeded: h.PaymentsSucceeded, PaymentsFailed: h.PaymentsFailed,
		EarlierRuns: h.EarlierRuns, EarlierRunsRecovered: h.EarlierRunsRecovered, MessagesThisRun: h.MessagesThisRun,
		AllowedChannels: allowed, Language: policy.Sanitize(h.Locale), Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars,
	})
	if err != nil {
		return recoup.Decision{}, []string{"prompt template: " + err.Error()}, observability.FallbackError
	}
	start := time.Now()
	resp, err := a.LLM.Complete(ctx, llm.Request{
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
	if err := llm.DecodeStrict(resp.Content, &ans); err != nil {
		return recoup.Decision{}, []string{"model answer is not valid JSON for the schema: " + err.Error()}, observability.FallbackInvalidJSON
	}
	d, violations := pol.Check(ans, f)
	if len(violations) > 0 {
		return recoup.Decision{}, violations, observability.FallbackViolation
	}
	return d, nil, ""
}

func allowedChannels(h CustomerHistory, excluded []recoup.Channel, only recoup.Channel) []recoup.Channel {
	var out []recoup.Channel
	defer func() {
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

// incentiveText is the sentence the templates add for an offer.
func incentiveText(inc recoup.Incentive, expires time.Time) string {
	switch inc.Kind {
	case recoup.IncentiveDiscountPercent:
		return fmt.Sprintf("Update your payment details by %s and we'll take %d%% off this invoice.", expires.Format("January 2"), inc.Value)
	case recoup.IncentiveExtensionDays:
		return fmt.Sprintf("We've extended your grace period by %d days.", inc.Value)
	}
	return ""
}
