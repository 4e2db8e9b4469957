package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// MetricApprovals counts held messages by outcome (requested, approved, rejected, edited,
// timed_out): recorded through the SDK's workflow metrics handler, so a replay never
// counts twice; exported as recoup_approvals_total{outcome=…} by the worker's /metrics.
const MetricApprovals = "recoup_approvals"

// Approval outcomes, as State.Approvals and the metric name them.
const (
	approvalRequested = "requested"
	approvalApproved  = "approved"
	approvalRejected  = "rejected"
	approvalEdited    = "edited"
	approvalTimedOut  = "timed_out"
	approvalEnded     = "ended" // the run ended (paid, canceled) while the message was held
)

// checkEditActivity checks an edit while support waits for the Update's answer: bounded,
// so that an edit during an outage is refused ("try again") instead of hanging; heartbeated
// like the run's other activities (livenessTimeout).
var checkEditActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 2 * time.Minute, HeartbeatTimeout: livenessTimeout,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second},
}

// approvalAnswer is support's answer to the held message. An edit claims the message while
// it is checked (pending): no other answer applies meanwhile, and a refused edit leaves it
// held again.
type approvalAnswer struct {
	outcome, by, reason, via string
	edited                   *recoup.Decision
	pending                  bool
}

// DecisionLine is a decision in one line, as the run's details show it (for the CLI).
func DecisionLine(dec recoup.Decision) string { return decisionLine(dec) }

func countApproval(ctx workflow.Context, outcome string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": outcome}).Counter(MetricApprovals).Inc(1)
}

// awaitApproval holds a decision the approval policy asked a human for (dec.Approval) until
// support approves, rejects or edits it, the timeout applies on_timeout, or the run ends.
// It returns the decision to deliver, and false when nothing is sent for the step. The
// time held (not paused) moves later steps back, as an incident hold does. Runs recorded
// before ChangeApprovals never held a message.
func (d *dunning) awaitApproval(ctx workflow.Context, step int, dec recoup.Decision) (recoup.Decision, bool) {
	req := dec.Approval
	if req == nil || version(ctx, ChangeApprovals, 1) < 1 {
		return dec, true
	}
	since := workflow.Now(ctx)
	d.state.Approval = &recoup.PendingApproval{Step: step, Rules: req.Rules, Held: dec, Since: since,
		Until: since.Add(req.Timeout), OnTimeout: req.OnTimeout}
	d.approval = nil
	countApproval(ctx, approvalRequested)
	d.log.Info("holding the message for approval", "step", step, "rules", strings.Join(req.Rules, "; "))
	if d.state.Status == recoup.StatusActive {
		d.setStatus(ctx, recoup.StatusAwaitingApproval, d.approvalReason())
	}
	d.state.NextAction = fmt.Sprintf("approval of step %d (else %s)", step, req.OnTimeout)
	paused := d.awaitAnswer(ctx, d.state.Approval)
	d.pausedFor += workflow.Now(ctx).Sub(since) - paused // a pause moves later steps back by itself
	send, ok, rec := d.approvalOutcome(ctx, dec)
	d.state.Approval, d.approval = nil, nil
	d.state.NextAction, d.state.NextActionAt = "", time.Time{}
	if rec.Outcome != approvalEnded {
		send, ok = d.releaseHeld(ctx, dec, send, ok, &rec)
		countApproval(ctx, rec.Outcome)
	}
	d.state.Approvals = append(d.state.Approvals, rec)
	if d.state.Status == recoup.StatusAwaitingApproval {
		d.setStatus(ctx, recoup.StatusActive, "")
	}
	if !ok && rec.Outcome != approvalEnded {
		d.state.Messages = append(d.state.Messages, recoup.MessageRecord{Step: step, Channel: dec.Channel,
			Delivery: "skipped", Error: fmt.Sprintf("held for approval and %s: %s", rec.Outcome, rec.Reason), At: workflow.Now(ctx)})
	}
	d.updateDetails(ctx)
	return send, ok
}

// awaitAnswer waits until support answers the held message p, its timeout passes or the
// run ends. The timeout's clock stops while the run is paused (or needs attention): the
// time left resumes after the resume (p.Until moves back). An edit accepted before the
// timeout is checked before the timeout applies. It returns the time paused meanwhile.
func (d *dunning) awaitAnswer(ctx workflow.Context, p *recoup.PendingApproval) (paused time.Duration) {
	answered := func() bool { return (d.approval != nil && !d.approval.pending) || d.state.Status.Ended() }
	for !answered() && ctx.Err() == nil {
		now := workflow.Now(ctx)
		if d.pausedLike() {
			d.state.NextActionAt = time.Time{} // paused: the approval's clock stands still
			d.updateDetails(ctx)
			_ = workflow.Await(ctx, func() bool { return !d.pausedLike() || answered() })
			dt := workflow.Now(ctx).Sub(now)
			paused += dt
			p.Until = p.Until.Add(dt)
			continue
		}
		if !now.Before(p.Until) {
			if d.approval == nil {
				return paused // timed out
			}
			_ = workflow.Await(ctx, func() bool { return answered() || d.approval == nil })
			continue
		}
		d.state.NextActionAt = p.Until
		d.updateDetails(ctx)
		summary := fmt.Sprintf("approval of step %d (else %s after %s)", p.Step, p.OnTimeout, humanDuration(p.Until.Sub(now)))
		_, _ = awaitFor(ctx, p.Until.Sub(now), summary, func() bool { return answered() || d.pausedLike() })
	}
	return paused
}

// releaseHeld settles the held message's outcome (ReleaseHeldMessage): the yearly budget
// is checked again for what is sent (an incentive that no longer fits is withdrawn), and
// the decisions table records what the step sends. Stopped by the run's end, nothing is
// sent.
func (d *dunning) releaseHeld(ctx workflow.Context, held, send recoup.Decision, ok bool, rec *recoup.ApprovalRecord) (recoup.Decision, bool) {
	f := d.in.Failure
	in := activities.ReleaseHeldInput{WorkflowID: d.runKey, InvoiceID: f.InvoiceID, Step: rec.Step, History: d.history,
		Excluded: slices.Clone(d.excluded), AmountMinor: f.AmountMinor, Currency: f.Currency, Held: held,
		Why: rec.Outcome + ": " + rec.Reason}
	if ok {
		in.Send = &send
	}
	var res activities.ReleaseHeldResult
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		in.Now = workflow.Now(ctx)
		return workflow.ExecuteActivity(withSummary(ctx, dbActivity, fmt.Sprintf("Step %d · release the held message (%s)", rec.Step, rec.Outcome)),
			a.ReleaseHeldMessage, in)
	}, &res)
	switch {
	case stopped:
		return send, false
	case err != nil:
		d.log.Error("could not release the held message; nothing is sent for its step", "step", rec.Step, "error", err)
		rec.Reason += " (not sent: " + err.Error() + ")"
		return send, false
	case !ok:
		return send, false
	}
	if len(res.Withdrawn) > 0 {
		rec.Reason += " (incentive withdrawn: " + strings.Join(res.Withdrawn, "; ") + ")"
	}
	sent := res.Decision
	rec.Sent = &sent
	return res.Decision, true
}

// approvalOutcome says what became of the held message: what to send (if anything), and
// the record that explains it.
func (d *dunning) approvalOutcome(ctx workflow.Context, held recoup.Decision) (recoup.Decision, bool, recoup.ApprovalRecord) {
	p := d.state.Approval
	rec := recoup.ApprovalRecord{Step: p.Step, Rules: p.Rules, Since: p.Since, At: workflow.Now(ctx)}
	send := held
	send.Approval = nil
	switch ans := d.approval; {
	case d.state.Status.Ended() || ctx.Err() != nil:
		rec.Outcome, rec.Reason = approvalEnded, "the run ended ("+string(d.state.Status)+") while the message was held"
		return send, false, rec
	case ans != nil:
		rec.Outcome, rec.By, rec.Reason, rec.Via = ans.outcome, ans.by, ans.reason, ans.via
		if ans.outcome == approvalRejected {
			return send, false, rec
		}
		if ans.edited != nil {
			send = *ans.edited
		}
	default:
		rec.Outcome = approvalTimedOut
		rec.Reason = fmt.Sprintf("nobody acted within %s: %s", p.Until.Sub(p.Since), p.OnTimeout)
		if p.OnTimeout != recoup.ApprovalOnTimeoutRules || held.Approval.Fallback == nil {
			return send, false, rec
		}
		send = *held.Approval.Fallback
		if send.Channel != held.Channel {
			now := workflow.Now(ctx)
			send.SendAt, send.SendUntil = now, now // look up the allowed hours of its channel
		}
	}
	return send, true, rec
}

// approvalReason is the status reason while a message is held: which rules asked, and what
// is held.
func (d *dunning) approvalReason() string {
	p := d.state.Approval
	return fmt.Sprintf("step %d held for approval (%s): %s", p.Step, strings.Join(p.Rules, "; "), decisionLine(p.Held))
}

// goOn sets the status a run goes on with after a pause or an escalation: held for an
// incident, awaiting approval of a held message, or active.
func (d *dunning) goOn(ctx workflow.Context) {
	switch {
	case d.state.Hold != nil:
		d.setStatus(ctx, recoup.StatusHeld, "failure-spike incident "+d.state.Hold.IncidentID)
	case d.state.Approval != nil:
		d.setStatus(ctx, recoup.StatusAwaitingApproval, d.approvalReason())
	default:
		d.setStatus(ctx, recoup.StatusActive, "")
	}
}

// validateAnswer: an approval action applies only to a run holding a message that nobody
// answered yet, and names who acts.
func (d *dunning) validateAnswer(by string) error {
	if err := d.validateActive(); err != nil {
		return err
	}
	switch {
	case d.state.Approval == nil:
		return rejected("the run is not awaiting approval (it is %s)", d.state.Status)
	case d.approval != nil && d.approval.pending:
		return rejected("step %d's message is being edited by %s (the edit is checked now): the first answer applies", d.state.Approval.Step, d.approval.by)
	case d.approval != nil:
		return rejected("step %d's message was already answered (%s by %s): the first answer applies", d.state.Approval.Step, d.approval.outcome, d.approval.by)
	case strings.TrimSpace(by) == "":
		return rejected("by is required: say who acts")
	}
	return nil
}

func (d *dunning) validateApprove(r recoup.Approval) error { return d.validateAnswer(r.By) }

func (d *dunning) validateReject(r recoup.Approval) error {
	if err := d.validateAnswer(r.By); err != nil {
		return err
	}
	if strings.TrimSpace(r.Reason) == "" {
		return rejected("a reason is required: say why nothing is sent for step %d", d.state.Approval.Step)
	}
	return nil
}

// validateEdit refuses an edit outside the bounds the decision recorded (policy.CheckChoice:
// tones, the customer's channels, the plan's caps less the yearly budget used, lengths);
// the handler then checks the text against guardrails.yaml (CheckApprovalEdit).
func (d *dunning) validateEdit(r recoup.ApprovalEdit) error {
	if err := d.validateAnswer(r.By); err != nil {
		return err
	}
	if r.Tone == "" && r.Incentive == nil && r.Channel == "" && r.Subject == "" && r.Message == "" {
		return rejected("nothing to edit: give a tone, incentive, channel, subject or message")
	}
	held := d.state.Approval.Held
	if r.Channel == recoup.ChannelNone {
		return rejected("channel none sends nothing: to send nothing, reject the message")
	}
	if r.Channel != "" && slices.Contains(d.excluded, r.Channel) {
		return rejected("%s cannot reach this customer in this run", r.Channel)
	}
	if v := policy.CheckChoice(held.Approval.Limits, activities.EditedAnswer(held, r)); len(v) > 0 {
		return rejected("edit refused: %s", strings.Join(v, "; "))
	}
	return nil
}

func (d *dunning) approve(ctx workflow.Context, r recoup.Approval, via string) string {
	step := d.state.Approval.Step
	d.approval = &approvalAnswer{outcome: approvalApproved, by: r.By, reason: r.Reason, via: via}
	d.record(ctx, "approve", r.By, r.Reason, via)
	return fmt.Sprintf("approved: step %d's message goes out in the customer's allowed hours", step)
}

func (d *dunning) reject(ctx workflow.Context, r recoup.Approval, via string) string {
	step := d.state.Approval.Step
	d.approval = &approvalAnswer{outcome: approvalRejected, by: r.By, reason: r.Reason, via: via}
	d.record(ctx, "reject", r.By, r.Reason, via)
	return fmt.Sprintf("rejected: nothing is sent for step %d", step)
}

// claimEdit validates an edit again and claims the held message for it while it is
// checked: a later approve, reject or edit is refused meanwhile.
func (d *dunning) claimEdit(r recoup.ApprovalEdit) error {
	if err := d.validateEdit(r); err != nil {
		return err
	}
	d.approval = &approvalAnswer{outcome: approvalEdited, by: r.By, pending: true}
	return nil
}

// edit checks the edited message against the policy in force (CheckApprovalEdit) and, when
// it passes, sends it instead of the held one. The edit holds the message's claim meanwhile
// (claimEdit); a refusal or a failed check gives it back: the message waits again.
func (d *dunning) edit(ctx workflow.Context, r recoup.ApprovalEdit, via string) (string, error) {
	p, claim := d.state.Approval, d.approval
	f := d.in.Failure
	defer func() {
		if d.approval == claim && claim.pending {
			d.approval = nil // refused: the held message waits for an answer again
		}
	}()
	var res activities.CheckEditResult
	stopped, err := d.stoppable(ctx, func() bool { return d.state.Approval != p }, func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, checkEditActivity, fmt.Sprintf("Step %d · check support's edit", p.Step)), a.CheckApprovalEdit,
			activities.CheckEditInput{WorkflowID: d.runKey, InvoiceID: f.InvoiceID, Step: p.Step, History: d.history,
				Excluded: slices.Clone(d.excluded), AmountMinor: f.AmountMinor, Currency: f.Currency, Now: workflow.Now(ctx), Held: p.Held, Edit: r})
	}, &res)
	switch {
	case stopped || d.state.Approval != p || d.approval != claim:
		return "", rejected("step %d's message is no longer held (the run is %s)", p.Step, d.state.Status)
	case err != nil:
		return "", rejected("the edit could not be checked (%v); nothing changed, try again", err)
	case len(res.Violations) > 0:
		return "", rejected("edit refused by the guardrails: %s", strings.Join(res.Violations, "; "))
	}
	dec := res.Decision
	claim.reason, claim.via, claim.edited, claim.pending = r.Reason, via, &dec, false
	d.record(ctx, "edit", r.By, r.Reason, via)
	return "edited: step " + fmt.Sprint(p.Step) + " sends " + decisionLine(dec), nil
}
