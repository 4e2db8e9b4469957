package activities

import (
	"context"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/model/policy"
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
// anything. It calls the model when one is configured.
func (a *Activities) PreviewDecision(ctx context.Context, set *templates.Set, in PreviewInput) (Preview, error) {
	pol := set.Policy
	h := in.Decide.History
	facts := policy.Facts{Step: in.Decide.Step, Plan: h.Plan,
		AllowedChannels: allowedChannels(h, in.Decide.Excluded, in.Decide.Channel, pol.Channels),
		AmountDue:       money.Format(in.Decide.AmountMinor, in.Decide.Currency, h.Locale), Language: h.Locale}
	p := Preview{Variant: in.Variant, Schema: string(pol.Schema()), AllowedChannel: facts.AllowedChannels}
	if p.Variant == "" {
		p.Variant = pol.VariantFor(h.CustomerID)
	}
	var err error
	if p.System, p.User, err = buildPrompt(set, p.Variant, in.Decide, facts); err != nil {
		return p, err
	}
	if p.RulesDecision, err = pol.RulesDecision(facts); err != nil {
		return p, err
	}
	p.Final = p.RulesDecision
	if a.LLM != nil && len(facts.AllowedChannels) > 0 {
		d, violations, _ := a.askModel(ctx, set, p.Variant, in.Decide, facts)
		if d.DecidedBy == recoup.DecidedByLLM {
			if v := a.smsTooLong(set, d, h); v != "" {
				violations = []string{v}
			} else {
				p.Final = d
			}
		}
		d.Violations = violations
		p.ModelDecision, p.ModelRejected = &d, violations
	}
	msg := templates.MessageData{FirstName: in.FirstName, Subject: p.Final.Subject, Message: p.Final.Message, Tone: p.Final.Tone,
		Incentive:  messageIncentive(p.Final.Incentive, in.Decide.Now.Add(time.Duration(pol.OfferValidDays)*24*time.Hour), h.Locale),
		AmountDue:  facts.AmountDue,
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
