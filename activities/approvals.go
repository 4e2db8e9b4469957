package activities

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// approvalRequest (decideSteps' last step): when a rule of the policy's approval section
// matches the decided message, the decision carries an ApprovalRequest: the run holds the
// message for a human. It names the rules, the timeout and on_timeout, the rules' message
// without incentive (sent on timeout), and the bounds an edit must stay within.
func (a *DunningActivities) approvalRequest(ctx context.Context, g *decision, name string) error {
	ap := g.pol.Approval
	if !ap.Enabled || !g.d.Channel.Valid() {
		return nil
	}
	smsBefore := false
	if ap.Rules.FirstSMS && g.d.Channel == recoup.ChannelSMS {
		var err error
		if smsBefore, err = a.Store.SMSSentBefore(ctx, g.in.History.CustomerID); err != nil {
			return err
		}
	}
	rules := g.pol.ApprovalRules(policy.ApprovalFacts{AmountMinor: g.in.AmountMinor, Currency: g.in.Currency,
		Plan: g.in.History.Plan, Decision: g.d, SMSSentBefore: smsBefore})
	if len(rules) == 0 {
		return nil
	}
	limits, err := a.editLimits(ctx, g.pol, g.facts, g.in.History, g.in.Now)
	if err != nil {
		return err
	}
	req := &recoup.ApprovalRequest{Rules: rules, Timeout: time.Duration(ap.Timeout), OnTimeout: ap.OnTimeout, Limits: limits}
	if ap.OnTimeout == recoup.ApprovalOnTimeoutRules {
		fb, err := g.pol.RulesDecision(g.facts)
		if err != nil {
			return err
		}
		fb.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
		req.Fallback = &fb
	}
	g.d.Approval = req
	g.note(name, "held for approval: %s", strings.Join(rules, "; "))
	return nil
}

// editLimits are the bounds of an edit: the plan's caps lowered to what the yearly budgets
// leave, across all runs.
func (a *DunningActivities) editLimits(ctx context.Context, pol *policy.Policy, f policy.Facts, h CustomerHistory, now time.Time) (recoup.EditLimits, error) {
	caps := pol.CapsFor(h.Plan)
	since := now.AddDate(-1, 0, 0)
	discount, err := a.Store.OfferedSince(ctx, h.CustomerID, recoup.IncentiveDiscountPercent, since)
	if err != nil {
		return recoup.EditLimits{}, err
	}
	extension, err := a.Store.OfferedSince(ctx, h.CustomerID, recoup.IncentiveExtensionDays, since)
	if err != nil {
		return recoup.EditLimits{}, err
	}
	return pol.EditLimits(f, caps.DiscountBudgetPerYear-discount, caps.ExtensionBudgetPerYear-extension), nil
}

// CheckEditInput is an edit of a held message to check against the policy in force.
type CheckEditInput struct {
	WorkflowID  string
	InvoiceID   string
	Step        int
	History     CustomerHistory
	Excluded    []recoup.Channel
	AmountMinor int64
	Currency    string
	Now         time.Time
	Held        recoup.Decision
	Edit        recoup.ApprovalEdit
}

// CheckEditResult is the edited decision (with its allowed-hours window), or why the edit
// is refused.
type CheckEditResult struct {
	Decision   recoup.Decision
	Violations []string
}

// CheckApprovalEdit checks an edit of a held message through the same guardrails as the
// model's answer (policy.Check: channel, tone, incentive caps, lengths, guardrails.yaml),
// the SMS segments and the plan's yearly budget, and gives the decision to send with the
// allowed-hours window of its channel. A refused edit changes nothing.
func (a *DunningActivities) CheckApprovalEdit(ctx context.Context, in CheckEditInput) (CheckEditResult, error) {
	g := a.newDecision(DecideInput{WorkflowID: in.WorkflowID, InvoiceID: in.InvoiceID, Step: in.Step, History: in.History,
		Excluded: in.Excluded, AmountMinor: in.AmountMinor, Currency: in.Currency, Now: in.Now}, a.Prompts())
	// The edit keeps the held message's decline class: it may not contradict its plan.
	g.facts.Decline = g.set.DeclineFacts(cmp.Or(in.Held.DeclineClass, recoup.DeclineUnknown), 2)
	ans := EditedAnswer(in.Held, in.Edit)
	d, v := g.pol.Check(ans, g.facts)
	if len(v) == 0 {
		if s := a.smsTooLong(g.set, d, in.History); s != "" {
			v = append(v, s)
		}
	}
	if len(v) == 0 {
		var budget []string
		probe := d
		if _, err := a.withinBudget(ctx, g.pol, in.History, &probe, &budget, in.Now); err != nil {
			return CheckEditResult{}, err
		}
		v = append(v, budget...)
	}
	if len(v) > 0 {
		return CheckEditResult{Violations: v}, nil
	}
	d.DecidedBy, d.Rationale = recoup.DecidedBySupport, fmt.Sprintf("edited by %s: %s", in.Edit.By, in.Edit.Reason)
	d.PromptVersion, d.PolicyVersion, d.Variant, d.Model = in.Held.PromptVersion, g.set.PolicyVersion, in.Held.Variant, in.Held.Model
	c, err := a.Store.GetCustomer(ctx, in.History.CustomerID)
	if err != nil {
		return CheckEditResult{}, err
	}
	w, err := a.sendWindow(c, d.Channel, in.Now)
	if err != nil {
		return CheckEditResult{}, err
	}
	d.SendAt, d.SendUntil = w.NotBefore, w.NotAfter
	return CheckEditResult{Decision: d}, nil
}

// EditedAnswer is the held decision with an edit's fields applied, as the model's answer
// would be: what the guardrails check.
func EditedAnswer(held recoup.Decision, e recoup.ApprovalEdit) policy.Answer {
	var ans policy.Answer
	ans.Channel, ans.Tone, ans.Subject, ans.Message, ans.Rationale = string(held.Channel), held.Tone, held.Subject, held.Message, held.Rationale
	ans.Incentive.Kind, ans.Incentive.Value = held.Incentive.Kind, held.Incentive.Value
	if e.Channel != "" {
		ans.Channel = string(e.Channel)
	}
	if e.Tone != "" {
		ans.Tone = e.Tone
	}
	if e.Incentive != nil {
		ans.Incentive.Kind, ans.Incentive.Value = e.Incentive.Kind, e.Incentive.Value
	}
	if ans.Incentive.Kind == "" {
		ans.Incentive.Kind = recoup.IncentiveNone
	}
	if e.Subject != "" {
		ans.Subject = e.Subject
	}
	if e.Message != "" {
		ans.Message = e.Message
	}
	return ans
}
