package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// ClassifyReplyInput is one customer reply to classify for a run.
type ClassifyReplyInput struct {
	WorkflowID string // the run key
	InvoiceID  string
	CustomerID string
	Reply      recoup.Reply
	// PausedSince is when the reply pause in force began (zero when none): a chain of
	// promises never pauses the run beyond max_promise_days from the first.
	PausedSince time.Time
}

// ClassifyReplyResult is the reply's intent and what the rules decided the run does.
type ClassifyReplyResult struct {
	Intent        recoup.Intent      `json:"intent"`
	Confidence    float64            `json:"confidence"`
	PromisedOn    string             `json:"promised_on,omitempty"`
	DecidedBy     string             `json:"decided_by"` // recoup.DecidedByLLM or DecidedByRules
	Model         string             `json:"model,omitempty"`
	PromptVersion string             `json:"prompt_version"`
	Action        recoup.ReplyAction `json:"action"`
	// PauseUntil ends the pause of pause_until and verify_payment.
	PauseUntil time.Time `json:"pause_until,omitempty"`
	Note       string    `json:"note,omitempty"`
	Violations []string  `json:"violations,omitempty"` // why the model's answer was not used
}

// replySchema is the strict JSON Schema of the model's answer.
func replySchema() json.RawMessage {
	intents := make([]string, len(recoup.Intents))
	for i, in := range recoup.Intents {
		intents[i] = string(in)
	}
	b, _ := json.Marshal(map[string]any{
		"type": "object", "additionalProperties": false,
		"required": []string{"intent", "confidence", "promised_date"},
		"properties": map[string]any{
			"intent":        map[string]any{"type": "string", "enum": intents},
			"confidence":    map[string]any{"type": "number"},
			"promised_date": map[string]any{"type": "string", "description": "YYYY-MM-DD, or empty"},
		},
	})
	return b
}

// ClassifyReply classifies a customer's reply into one intent (the model under a strict
// JSON schema when one is configured, otherwise, or when its answer is unusable, the rules
// of replies.yaml) and decides in code what the run does (the mapping of replies.yaml,
// min_confidence, max_promise_days). The model never writes to the customer here. A run in
// the holdout's control arm (dunning_runs.holdout) gets no model: its replies are classified
// by the rules alone, so no treatment-only behaviour reaches the control arm.
func (a *DunningActivities) ClassifyReply(ctx context.Context, in ClassifyReplyInput) (ClassifyReplyResult, error) {
	set := a.Prompts()
	if set.Replies == nil {
		return ClassifyReplyResult{}, temporal.NewNonRetryableApplicationError("the prompt set has no replies.yaml", recoup.ErrTypeInvalidInput, nil)
	}
	loc, lang, zoneNote := time.UTC, in.Reply.Locale, "the customer is unknown: dates read in UTC"
	useModel := a.LLM != nil
	if a.Store != nil {
		if useModel {
			arm, _, err := a.Store.RunHoldout(ctx, in.WorkflowID)
			if err != nil {
				return ClassifyReplyResult{}, err
			}
			useModel = arm != policy.ArmControl
		}
		c, err := a.Store.GetCustomer(ctx, in.CustomerID)
		switch {
		case err == nil:
			loc, zoneNote = replyZone(c, in.Reply.ReceivedAt)
			lang = c.Locale
		case !errors.Is(err, postgres.ErrUnknownCustomer):
			return ClassifyReplyResult{}, err
		}
	}
	res := a.classify(ctx, set, in.Reply, lang, loc, useModel)
	res.PromptVersion = set.Version
	decideReplyAction(set.Replies, &res, in.Reply.ReceivedAt, loc)
	boundPromiseChain(set.Replies, &res, in.PausedSince)
	if zoneNote != "" && res.PromisedOn != "" {
		res.Note = joinReplyNote(res.Note, zoneNote)
	}
	if a.LLM != nil && !useModel {
		res.Note = joinReplyNote(res.Note, "holdout control arm: classified by the rules, no model asked")
	}
	a.logger(ctx).Info("reply classified", "intent", string(res.Intent), "confidence", res.Confidence,
		"decided_by", res.DecidedBy, "action", string(res.Action), "reply_event_id", in.Reply.EventID)
	return res, nil
}

// replyZone is the zone a reply's dates are read in: the zone sends use
// (policy.CustomerZones: the profile's time zone, else inferred from the phone number or
// locale). Of several candidates it takes the one whose day ends last, so a pause until the
// day after a promise never ends before that day ends where the customer may be. The note
// says how the zone was found when it is not the profile's own (an invalid time_zone is
// named, never silently read as UTC).
func replyZone(c postgres.Customer, at time.Time) (*time.Location, string) {
	z := policy.CustomerZones(policy.ZoneHints{TimeZone: c.TimeZone, Phone: c.Phone, Locale: c.Locale})
	loc := z.Locs[0]
	for _, l := range z.Locs[1:] {
		_, off := at.In(l).Zone()
		if _, best := at.In(loc).Zone(); off < best {
			loc = l
		}
	}
	note := ""
	if z.From != "" {
		note = "dates read in " + loc.String() + " (" + z.String() + ")"
		if c.TimeZone != "" && !strings.EqualFold(c.TimeZone, "UTC") {
			if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
				note = fmt.Sprintf("time zone %q is not valid; ", truncate(c.TimeZone, 40)) + note
			}
		}
	}
	return loc, note
}

// joinReplyNote joins two notes with "; ".
func joinReplyNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// classify asks the model (when useModel), then the rules when the model is not to be
// asked, absent or its answer unusable.
func (a *DunningActivities) classify(ctx context.Context, set *templates.Set, r recoup.Reply, lang string, loc *time.Location, useModel bool) ClassifyReplyResult {
	now := r.ReceivedAt.In(loc)
	var violations []string
	if useModel && a.LLM != nil {
		cl, err := a.askReplyModel(ctx, set, r.Text, lang, now)
		if err == nil {
			if cl.Intent == recoup.IntentPromiseToPay && cl.PromisedOn == "" {
				cl.PromisedOn, _ = replies.PromisedDate(r.Text, now, lang)
			}
			return ClassifyReplyResult{Intent: cl.Intent, Confidence: cl.Confidence, PromisedOn: cl.PromisedOn,
				DecidedBy: recoup.DecidedByLLM, Model: a.LLM.Model()}
		}
		violations = append(violations, err.Error())
	}
	cl := set.Replies.Classify(r.Text, now, lang)
	return ClassifyReplyResult{Intent: cl.Intent, Confidence: cl.Confidence, PromisedOn: cl.PromisedOn,
		DecidedBy: recoup.DecidedByRules, Violations: violations}
}

// askReplyModel returns the model's classification, or why it cannot be used.
func (a *DunningActivities) askReplyModel(ctx context.Context, set *templates.Set, text, lang string, now time.Time) (replies.Classification, error) {
	intents := make([]string, len(recoup.Intents))
	for i, in := range recoup.Intents {
		intents[i] = string(in)
	}
	system, user, err := set.ReplyPrompt(templates.ReplyData{Intents: intents, Language: lang, Today: now.Format(time.DateOnly)}, text)
	if err != nil {
		return replies.Classification{}, fmt.Errorf("prompt template: %w", err)
	}
	start := time.Now()
	resp, err := a.LLM.Complete(ctx, openai.Request{System: system, User: user, SchemaName: "reply_intent",
		Schema: replySchema(), Temperature: 0.01, MaxTokens: 100})
	a.Metrics.LLMRequest(time.Since(start), resp.PromptTokens, resp.CompletionTokens, err)
	switch {
	case err != nil:
		return replies.Classification{}, fmt.Errorf("model call failed: %w", err)
	case resp.Refusal != "":
		return replies.Classification{}, fmt.Errorf("model refused: %s", truncate(resp.Refusal, 200))
	}
	var cl replies.Classification
	if err := openai.DecodeStrict(resp.Content, &cl); err != nil {
		return cl, fmt.Errorf("model answer is not valid JSON for the schema: %w", err)
	}
	if !cl.Intent.Valid() {
		return cl, fmt.Errorf("model answered an intent outside the closed set: %q", truncate(string(cl.Intent), 40))
	}
	if cl.Confidence < 0 || cl.Confidence > 1 {
		return cl, fmt.Errorf("model answered a confidence outside 0..1: %v", cl.Confidence)
	}
	if cl.PromisedOn != "" {
		if _, err := time.Parse(time.DateOnly, cl.PromisedOn); err != nil {
			return cl, fmt.Errorf("model answered a promised_date that is not YYYY-MM-DD: %q", truncate(cl.PromisedOn, 20))
		}
	}
	return cl, nil
}

// decideReplyAction applies the rules: below min_confidence support looks at it; a promise
// pauses until the day after its date (bounded), else support looks at it; already_paid
// pauses while billing verifies.
func decideReplyAction(cfg *replies.Config, res *ClassifyReplyResult, received time.Time, loc *time.Location) {
	res.Action = cfg.Action(res.Intent)
	if res.Confidence < cfg.MinConfidence {
		res.Action, res.Note = recoup.ReplyEscalate, fmt.Sprintf("confidence %.2f below %.2f", res.Confidence, cfg.MinConfidence)
		return
	}
	switch res.Action {
	case recoup.ReplyPauseUntil:
		until, ok := replies.PauseUntil(res.PromisedOn, received, loc, cfg.MaxPromiseDays)
		if !ok {
			res.Action, res.Note = recoup.ReplyEscalate, fmt.Sprintf("no promised date within %d days understood", cfg.MaxPromiseDays)
			return
		}
		res.PauseUntil = until
	case recoup.ReplyVerifyPayment:
		res.PauseUntil = received.AddDate(0, 0, cfg.VerifyWaitDays)
	}
}

// boundPromiseChain escalates a promise that would keep a run already paused by an earlier
// promise paused beyond max_promise_days from the start of that pause: a broken promise.
func boundPromiseChain(cfg *replies.Config, res *ClassifyReplyResult, pausedSince time.Time) {
	if res.Action != recoup.ReplyPauseUntil || pausedSince.IsZero() {
		return
	}
	if limit := pausedSince.AddDate(0, 0, cfg.MaxPromiseDays); res.PauseUntil.After(limit) {
		res.Action, res.PauseUntil = recoup.ReplyEscalate, time.Time{}
		res.Note = fmt.Sprintf("broken promise: the promises since %s would pause the run beyond %d days",
			pausedSince.UTC().Format(time.DateOnly), cfg.MaxPromiseDays)
	}
}

// VerifyPaymentInput asks billing to verify a payment the customer says they made.
type VerifyPaymentInput struct {
	WorkflowID   string // the run key
	InvoiceID    string
	CustomerID   string
	ReplyEventID string
	Until        time.Time // the run waits for billing's answer until then
}

// RequestPaymentVerification sends billing a signed dunning.verify_payment webhook (Standard
// Webhooks, id "<run key>/verify/<reply event id>", the same on every retry). Without a
// webhook configured it only logs. A 4xx is final (recoup.ErrTypeWebhookRejected).
func (a *DunningActivities) RequestPaymentVerification(ctx context.Context, in VerifyPaymentInput) error {
	if a.Webhook == nil || !a.Webhook.Enabled() {
		a.logger(ctx).Info("dunning.verify_payment not sent: BILLING_WEBHOOK_URL is not set", "invoice_id", in.InvoiceID)
		return nil
	}
	err := a.Webhook.Send(ctx, webhook.Event{ID: in.WorkflowID + "/verify/" + strings.TrimSpace(in.ReplyEventID), Type: "dunning.verify_payment",
		Payload: map[string]any{"invoice_id": in.InvoiceID, "customer_id": in.CustomerID, "workflow_id": in.WorkflowID,
			"reply_event_id": in.ReplyEventID, "answer_by": in.Until.UTC().Format(time.RFC3339)}}, time.Now())
	if err != nil && provider.IsPermanent(err) {
		return temporal.NewNonRetryableApplicationError(err.Error(), recoup.ErrTypeWebhookRejected, err)
	}
	return err
}

// hardshipExtension: a customer who replied that they cannot pay now is offered the plan's
// extension on the next step (the budget step after it may still withdraw it).
func (a *DunningActivities) hardshipExtension(_ context.Context, g *decision, name string) error {
	if !g.in.Hardship || !g.d.Channel.Valid() {
		return nil
	}
	caps := g.pol.CapsFor(g.in.History.Plan)
	if caps.MaxExtensionDays <= 0 || g.d.Incentive.Kind == recoup.IncentiveExtensionDays {
		return nil
	}
	g.d.Incentive = recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: caps.MaxExtensionDays}
	g.note(name, "the customer replied with hardship: offering the plan's %d-day extension", caps.MaxExtensionDays)
	return nil
}

// PreviewReply is ClassifyReply for `starter prompts preview-reply` and the model benchmark:
// the customer's locale and zone are given instead of read from PostgreSQL, and nothing is
// logged. A plain function, not an activity (a worker registers a's methods).
func PreviewReply(ctx context.Context, a *DunningActivities, r recoup.Reply, locale string, loc *time.Location) (ClassifyReplyResult, error) {
	set := a.Prompts()
	if set.Replies == nil {
		return ClassifyReplyResult{}, errors.New("the prompt set has no replies.yaml")
	}
	res := a.classify(ctx, set, r, locale, loc, true)
	res.PromptVersion = set.Version
	decideReplyAction(set.Replies, &res, r.ReceivedAt, loc)
	return res, nil
}
