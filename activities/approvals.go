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
	if !ap.Enabled || !g.d.Channel.Valid() || g.control() { // the control arm's plain reminders need no person (and no edit may add an incentive)
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
	g.facts.Decline = g.set.DeclineFacts(cmp.Or(in.Held.DeclineClass, recoup.DeclineUnknown), in.Step, 2)
	ans := EditedAnswer(in.Held, in.Edit)
	if ans.Channel == string(recoup.ChannelNone) {
		return CheckEditResult{Violations: []string{"channel none sends nothing: to send nothing, reject the message"}}, nil
	}
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
	// The decisions table says what the step sends (the recovery report reads it).
	if err := a.saveDecision(ctx, g.in, d, nil); err != nil {
		return CheckEditResult{}, err
	}
	return CheckEditResult{Decision: d}, nil
}

// ReleaseHeldInput is a held message's outcome: the decision to send (nil: nothing is sent for
// the step, Why says why).
type ReleaseHeldInput struct {
	WorkflowID  string
	InvoiceID   string
	Step        int
	History     CustomerHistory
	Excluded    []recoup.Channel
	AmountMinor int64
	Currency    string
	Now         time.Time
	Held        recoup.Decision
	Send        *recoup.Decision
	Why         string
}

// ReleaseHeldResult is the decision the step sends (channel none: nothing), and why its
// incentive was withdrawn, if it was.
type ReleaseHeldResult struct {
	Decision  recoup.Decision
	Withdrawn []string
}

// ReleaseHeldMessage settles a held message once support (or the timeout) decided: the
// yearly incentive budget is checked again (a message may wait for days while another run
// of the customer offers an incentive): an incentive that no longer fits is withdrawn and,
// when the text speaks of it, the rules' message without incentive goes instead, as when
// deciding. The step's row in the decisions table is overwritten with what is sent (channel
// none when nothing is), so that the recovery report credits what the customer read.
func (a *DunningActivities) ReleaseHeldMessage(ctx context.Context, in ReleaseHeldInput) (ReleaseHeldResult, error) {
	g := a.newDecision(DecideInput{WorkflowID: in.WorkflowID, InvoiceID: in.InvoiceID, Step: in.Step, History: in.History,
		Excluded: in.Excluded, AmountMinor: in.AmountMinor, Currency: in.Currency, Now: in.Now}, a.Prompts())
	if in.Send == nil {
		d := in.Held
		d.Approval, d.Channel, d.Incentive = nil, recoup.ChannelNone, recoup.Incentive{Kind: recoup.IncentiveNone}
		d.Rationale = "held for approval, nothing sent: " + in.Why
		return ReleaseHeldResult{Decision: d}, a.saveDecision(ctx, g.in, d, nil)
	}
	d := *in.Send
	d.Approval = nil
	var withdrawn []string
	ok, err := a.withinBudget(ctx, g.pol, in.History, &d, &withdrawn, in.Now)
	if err != nil {
		return ReleaseHeldResult{}, err
	}
	if ok {
		if d, err = a.withoutIncentive(ctx, g, d); err != nil {
			return ReleaseHeldResult{}, err
		}
	}
	return ReleaseHeldResult{Decision: d, Withdrawn: withdrawn}, a.saveDecision(ctx, g.in, d, nil)
}

// withoutIncentive is d after its incentive was withdrawn: its own text if that still
// passes (it may speak of the incentive), else the rules' message without incentive, with
// the allowed hours of its channel.
func (a *DunningActivities) withoutIncentive(ctx context.Context, g *decision, d recoup.Decision) (recoup.Decision, error) {
	v := append(g.pol.CheckText("subject", d.Subject, d.Incentive, g.facts.AmountDue), g.pol.CheckText("message", d.Message, d.Incentive, g.facts.AmountDue)...)
	if len(v) == 0 {
		return d, nil
	}
	fb, err := g.pol.RulesDecision(g.facts)
	if err != nil {
		return recoup.Decision{}, err
	}
	fb.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
	fb.Step, fb.Variant, fb.PolicyVersion = d.Step, d.Variant, g.set.PolicyVersion
	fb.Rationale = "the approved incentive no longer fits the yearly budget; the rules' message without incentive"
	if fb.Channel == d.Channel {
		fb.SendAt, fb.SendUntil = d.SendAt, d.SendUntil
		return fb, nil
	}
	c, err := a.Store.GetCustomer(ctx, g.in.History.CustomerID)
	if err != nil {
		return recoup.Decision{}, err
	}
	w, err := a.sendWindow(c, fb.Channel, g.in.Now)
	if err != nil {
		return recoup.Decision{}, err
	}
	fb.SendAt, fb.SendUntil = w.NotBefore, w.NotAfter
	return fb, nil
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
