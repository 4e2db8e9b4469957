package activities

import (
	"context"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// Preview is what `starter prompts preview` shows marketing: exactly what the model
// receives, what it and the rules would decide, and the messages that would go out.
type Preview struct {
	Variant        string
	System, User   string
	Schema         string
	ModelDecision  *recoup.Decision // nil when no model is configured
	ModelRejected  []string         // why the model's answer would not be used
	RulesDecision  recoup.Decision
	Final          recoup.Decision // what would be sent: the model's if usable, else the rules'
	EmailSubject   string
	EmailText      string
	SMS            string
	AllowedChannel []recoup.Channel
	// Guardrails: what each of the guardrail steps the preview shares with DecideStrategy
	// changed (the contact cap and the incentive budget need the customer's history of
	// sends and offers, which a preview does not read).
	Guardrails []GuardrailNote
}

// PreviewInput describes the customer and step to preview.
type PreviewInput struct {
	Decide      DecideInput
	FirstName   string
	Variant     string // empty: the customer's own variant
	InvoiceID   string
	CustomerID  string
	ExpiresDays int
}

// PreviewDecision renders a step with the given prompt set without storing or sending
// anything. It calls the model when a has one. It is not an activity: `starter prompts
// preview` calls it directly.
func PreviewDecision(ctx context.Context, a *DunningActivities, set *templates.Set, in PreviewInput) (Preview, error) {
	pol := set.Policy
	h := in.Decide.History
	g := a.newDecision(in.Decide, set)
	facts := g.facts
	p := Preview{Variant: in.Variant, Schema: string(pol.Schema()), AllowedChannel: facts.AllowedChannels}
	if p.Variant == "" {
		p.Variant = pol.VariantFor(h.CustomerID)
	}
	g.variant = p.Variant
	var err error
	if p.System, p.User, err = buildPrompt(set, p.Variant, in.Decide, facts); err != nil {
		return p, err
	}
	if p.RulesDecision, err = pol.RulesDecision(facts); err != nil {
		return p, err
	}
	// The guardrails DecideStrategy applies that need no history of sends or offers.
	if err := a.runSteps(ctx, g, previewSteps); err != nil {
		return p, err
	}
	p.Final, p.Guardrails = g.d, g.Trace
	if g.asked {
		d := g.answer
		d.Violations = g.violations
		p.ModelDecision, p.ModelRejected = &d, g.violations
	}
	msg := templates.MessageData{FirstName: in.FirstName, Subject: p.Final.Subject, Message: p.Final.Message, Tone: p.Final.Tone,
		Incentive: messageIncentive(p.Final.Incentive, in.Decide.Now.Add(time.Duration(pol.OfferValidDays)*24*time.Hour), h.Locale),
		AmountDue: facts.AmountDue, Link: set.Declines.Plan(facts.Decline.Class).Link,
		PaymentURL: a.link(a.PaymentURL, in.InvoiceID, in.CustomerID), UnsubscribeURL: a.link(a.UnsubscribeURL, in.InvoiceID, in.CustomerID),
		Language: h.Locale}
	if p.EmailSubject, p.EmailText, _, err = set.Email(msg); err != nil {
		return p, err
	}
	if p.SMS, err = set.SMS(msg); err != nil {
		return p, err
	}
	return p, nil
}
