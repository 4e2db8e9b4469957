package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// The customer's replies. The ingress records each reply before it is delivered; STOP,
// START and HELP never reach the run as a Reply (STOP arrives as an opt-out of SMS). A
// free-text reply is queued by onReply and handled, one at a time and in order, by the
// reply goroutine: ClassifyReply names its intent and the action the rules decided, which
// the run applies here. Nothing here sends a message: a pause that ends goes back through
// the step's allowed-hours window, consent and settle checks like any other wait.

// onReply queues a reply (duplicates and replies after the run ended are only recorded).
func (d *dunning) onReply(ctx workflow.Context, r recoup.Reply) {
	rec := d.receive(ctx, recoup.SignalReply, r.EventID, r.ReceivedAt, other)
	if rec == nil {
		return
	}
	rec.Note = joinNote(rec.Note, "reply by "+string(r.Channel))
	d.pendingReplies = append(d.pendingReplies, r)
}

// repliesPending: a received reply is not handled yet (classification running or
// retrying); no message leaves until it is.
func (d *dunning) repliesPending() bool { return len(d.pendingReplies) > 0 }

// startReplies starts the goroutine that handles queued replies for as long as the run
// lives. A reply leaves the queue only once handled, so a run that continues as new
// carries the ones not yet handled.
func (d *dunning) startReplies(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			if err := workflow.Await(ctx, func() bool { return len(d.pendingReplies) > 0 }); err != nil {
				return
			}
			d.handleReply(ctx, d.pendingReplies[0])
			d.pendingReplies = d.pendingReplies[1:]
		}
	})
}

// handleReply classifies one reply and applies what the rules decided.
func (d *dunning) handleReply(ctx workflow.Context, r recoup.Reply) {
	rec := recoup.ReplyRecord{EventID: r.EventID, Channel: r.Channel, Text: r.Text, ReceivedAt: r.ReceivedAt}
	defer func() { d.addReply(ctx, rec) }()
	if version(ctx, ChangeReplies, 1) < 1 {
		rec.Note = "recorded only: the run predates reply handling"
		return
	}
	if d.state.Status.Ended() {
		rec.Note = "run already " + string(d.state.Status)
		return
	}
	f := d.in.Failure
	in := activities.ClassifyReplyInput{WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Reply: r}
	if d.state.Status == recoup.StatusPaused && !d.state.PausedUntil.IsZero() {
		in.PausedSince = d.pausedAt // a promise chain is bounded from its first pause
	}
	var res activities.ClassifyReplyResult
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, decideActivity, "Classify the customer's reply"), a.ClassifyReply, in)
	}, &res)
	switch {
	case stopped || d.state.Status.Ended():
		rec.Note = "run already " + string(d.state.Status)
		return
	case err != nil:
		res = activities.ClassifyReplyResult{Intent: recoup.IntentOther, Action: recoup.ReplyEscalate,
			DecidedBy: recoup.DecidedByRules, Note: "could not be classified: " + err.Error()}
	}
	rec.Intent, rec.Confidence, rec.PromisedOn, rec.DecidedBy, rec.Action = res.Intent, res.Confidence, res.PromisedOn, res.DecidedBy, res.Action
	if res.Action == recoup.ReplyPauseUntil {
		rec.PauseUntil = res.PauseUntil
	}
	rec.Note = d.applyReply(ctx, r, res)
	if res.Note != "" {
		rec.Note = joinNote(res.Note, rec.Note)
	}
}

// applyReply applies the rules' action and says what the run did. An escalation wins over
// any pause; a reply never lifts support's own pause or an escalation.
func (d *dunning) applyReply(ctx workflow.Context, r recoup.Reply, res activities.ClassifyReplyResult) string {
	supportPaused := d.state.Status == recoup.StatusPaused && d.state.PausedUntil.IsZero()
	switch res.Action {
	case recoup.ReplyStopEscalate, recoup.ReplyEscalate:
		d.needsAttention(ctx, fmt.Sprintf("customer replied: %s", res.Intent))
		if res.Action == recoup.ReplyStopEscalate {
			return "messages stopped; support decides (resolve, resume or cancel)"
		}
		return "waiting for support (resolve, resume or cancel)"
	case recoup.ReplyOfferExtend:
		d.state.Hardship = true
		d.updateDetails(ctx)
		return "the next step offers the plan's extension"
	}
	if d.state.Status == recoup.StatusNeedsAttention || supportPaused {
		if res.Action == recoup.ReplyPauseUntil {
			return "recorded: the run already waits for support; on resolve it pauses until " + res.PauseUntil.Format(time.RFC3339)
		}
		return "recorded: the run already waits for support"
	}
	switch res.Action {
	case recoup.ReplyPauseUntil:
		d.pauseForReply(ctx, res.PauseUntil, "customer promised to pay on "+res.PromisedOn)
		return "paused until " + res.PauseUntil.Format(time.RFC3339)
	case recoup.ReplyVerifyPayment:
		d.pauseForReply(ctx, res.PauseUntil, "customer says it is paid; billing verifies")
		return d.requestVerification(ctx, r, res.PauseUntil)
	}
	return "no action"
}

// requestVerification asks billing to verify the payment (dunning.verify_payment).
func (d *dunning) requestVerification(ctx workflow.Context, r recoup.Reply, until time.Time) string {
	f := d.in.Failure
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Ask billing to verify the payment"), a.RequestPaymentVerification,
			activities.VerifyPaymentInput{WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, ReplyEventID: r.EventID, Until: until})
	}, nil)
	switch {
	case stopped:
		return "paused; the run ended before billing was asked"
	case err != nil:
		d.log.Warn("billing refused the verify_payment webhook", "error", err)
		return "paused until " + until.Format(time.RFC3339) + "; billing refused the verification request: " + err.Error()
	}
	return "paused until " + until.Format(time.RFC3339) + "; billing asked to verify"
}

// pauseForReply pauses the run until until (it goes on by itself then). A later reply
// never shortens a pause an earlier one caused: a reply never makes a message leave sooner.
func (d *dunning) pauseForReply(ctx workflow.Context, until time.Time, reason string) {
	if !d.pausedLike() {
		d.pausedAt = workflow.Now(ctx)
	}
	if until.Before(d.state.PausedUntil) {
		until = d.state.PausedUntil
	}
	d.state.PausedUntil = until
	d.pauseGen++
	if d.state.Status == recoup.StatusPaused {
		d.state.Reason = reason
		d.updateDetails(ctx)
		return
	}
	d.setStatus(ctx, recoup.StatusPaused, reason)
}

// promiseAfterResolve is the newest promise's pause still in the future, if any: on
// resolve the run keeps the customer's word rather than forgetting it.
func (d *dunning) promiseAfterResolve(now time.Time) (recoup.ReplyRecord, bool) {
	for i := len(d.state.Replies) - 1; i >= 0; i-- {
		if r := d.state.Replies[i]; r.Action == recoup.ReplyPauseUntil && !r.PauseUntil.IsZero() {
			return r, r.PauseUntil.After(now)
		}
	}
	return recoup.ReplyRecord{}, false
}

// needsAttention makes the run wait for support.
func (d *dunning) needsAttention(ctx workflow.Context, reason string) {
	if !d.pausedLike() {
		d.pausedAt = workflow.Now(ctx)
	}
	d.state.PausedUntil = time.Time{}
	d.pauseGen++
	if d.state.Status == recoup.StatusNeedsAttention {
		d.state.Reason = reason
		d.updateDetails(ctx)
		return
	}
	d.setStatus(ctx, recoup.StatusNeedsAttention, reason)
}

// pausedLike: the run sends nothing until support (or the end of a reply's pause) lets it.
func (d *dunning) pausedLike() bool {
	return d.state.Status == recoup.StatusPaused || d.state.Status == recoup.StatusNeedsAttention
}

// endReplyPause ends a pause a reply caused, when its time came.
func (d *dunning) endReplyPause(ctx workflow.Context) {
	d.pausedFor += workflow.Now(ctx).Sub(d.pausedAt)
	d.state.PausedUntil = time.Time{}
	d.pauseGen++
	d.goOn(ctx)
	d.log.Info("the pause a reply caused ended")
}

// addReply records a handled reply in the state (bounded).
func (d *dunning) addReply(ctx workflow.Context, rec recoup.ReplyRecord) {
	if len(d.state.Replies) >= recoup.MaxReplyRecords {
		d.state.Replies = d.state.Replies[1:]
	}
	d.state.Replies = append(d.state.Replies, rec)
	d.updateDetails(ctx)
}

// replyLine is the newest reply in one line for the Web UI.
func replyLine(r recoup.ReplyRecord) string {
	text := []rune(r.Text)
	if len(text) > 40 {
		text = append(text[:40], '…')
	}
	s := fmt.Sprintf("Reply by %s: “%s”", r.Channel, string(text))
	if r.Intent != "" {
		s += fmt.Sprintf(" → %s (%.2f, %s) → %s", r.Intent, r.Confidence, r.DecidedBy, r.Action)
	}
	return s
}

// waitWhilePaused waits while the run is paused or needs attention: until support acts,
// the pause a reply caused ends (then the run goes on), or, for a step or final wait, the
// history grows long. Old runs (no PausedUntil) emit the same commands as before.
func (d *dunning) waitWhilePaused(ctx workflow.Context, canContinue bool) error {
	gen := d.pauseGen
	cond := func() bool {
		return !d.pausedLike() || d.pauseGen != gen || (canContinue && d.historyLong(ctx))
	}
	until := d.state.PausedUntil
	if until.IsZero() || d.state.Status != recoup.StatusPaused {
		return workflow.Await(ctx, cond)
	}
	if now := workflow.Now(ctx); now.Before(until) {
		summary := clip(fmt.Sprintf("paused until %s (%s), or until support acts", until.UTC().Format("2006-01-02 15:04 MST"), d.state.Reason), 160)
		ok, err := awaitFor(ctx, until.Sub(now), summary, cond)
		if err != nil || ok {
			return err
		}
	}
	d.endReplyPause(ctx)
	return nil
}
