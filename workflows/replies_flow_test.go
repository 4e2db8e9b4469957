package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// while a reply waits to be classified (ClassifyReply retrying while PostgreSQL's
// GetCustomer fails, up to its attempts, or a slow model) the run goes on sending: the
// customer writes "This is fraud" a minute before step 2 is due; classification takes ten
// minutes of retries; step 2 is sent to a customer disputing the charge.
func TestNoMessageLeavesWhileAReplyWaitsToBeClassified(t *testing.T) {
	w := newWorld(t)
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }}}
	w.env.OnActivity(a.ClassifyReply, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ClassifyReplyInput) (activities.ClassifyReplyResult, error) {
			if w.env.Now().Before(t0.Add(3*day + 10*time.Minute)) {
				return activities.ClassifyReplyResult{}, errors.New("get customer: connection refused")
			}
			return acts.ClassifyReply(ctx, in)
		})
	w.env.OnActivity(a.RequestPaymentVerification, mock.Anything, mock.Anything).Return(nil)
	at := 3*day - time.Minute // a minute before step 2 is due
	w.at(at, recoup.SignalReply, recoup.Reply{EventID: "reply:twilio:SMr2", Channel: recoup.ChannelSMS,
		Text: "This is fraud, I never authorized it", ReceivedAt: t0.Add(at)})
	_, st := w.run()
	t.Logf("sends at %v; replies %+v", w.sendTimes, st.Replies)
	if n := sendsBetween(w, at, 4*day); n != 0 {
		t.Fatalf("%d message(s) sent (at %v) while the customer's dispute waited to be classified", n, w.sendTimes)
	}
}

// max_promise_days bounds one promise, not a chain of them: a customer who promises
// again before each pause ends keeps the run paused for ever, and no broken promise ever
// reaches support. Three promises keep it silent for ~90 days.
func TestAChainOfPromisesDoesNotPauseTheRunBeyondMaxPromiseDays(t *testing.T) {
	w := newReplyWorld(t)
	w.reply(time.Hour, "SM1", "I'll pay on the 30th") // Nov 30
	w.reply(27*day, "SM2", "I'll pay on the 28th")    // Dec 28
	w.reply(55*day, "SM3", "I'll pay on the 25th")    // Jan 25
	mid := w.stateAt(70 * day)
	w.run()
	if mid.Status == recoup.StatusPaused && sendsBetween(w.world, time.Hour, 70*day) == 0 {
		t.Fatalf("day 70: still paused until %v by chained promises with no message and no escalation (replies %d)", mid.PausedUntil, len(mid.Replies))
	}
	if mid.Status != recoup.StatusNeedsAttention || len(mid.Replies) < 2 || !strings.Contains(mid.Replies[1].Note, "broken promise") {
		t.Fatalf("day 70: %s (%s), replies %+v; the second promise, beyond max_promise_days from the first, goes to support as a broken promise",
			mid.Status, mid.Reason, mid.Replies)
	}
}

// a promise that arrives while the run waits for support is only recorded; support
// resolves the earlier question and the run goes on sending, ignoring the customer's later
// promise to pay on the 15th (resolve names no reply, so support resolves what it saw).
func TestAPromiseReceivedWhileNeedingAttentionSurvivesTheResolve(t *testing.T) {
	w := newReplyWorld(t)
	w.reply(time.Hour, "SM1", "What is this charge for?")
	w.reply(2*day, "SM2", "ok got it, I'll pay on the 15th") // Sunday 15 November
	w.update(3*day, recoup.UpdateResolve, recoup.Resolve{By: "alice", Note: "explained the charge by phone"})
	w.run()
	resumeAt := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	if n := sendsBetween(w.world, 3*day, resumeAt.Sub(t0)); n != 0 {
		t.Fatalf("%d message(s) sent (at %v) before the 15th the customer promised", n, w.sendTimes)
	}
	if n := sendsBetween(w.world, resumeAt.Sub(t0), 60*day); n == 0 {
		t.Fatalf("no message after the promised day ended (sends at %v): the resolve's pause must end by itself", w.sendTimes)
	}
}

// support cannot put an open-ended pause on a run a reply paused ("already
// paused"); to stop it they must resume (the step due fires at once) and pause again.
func TestSupportsPauseTakesOverARunAReplyPaused(t *testing.T) {
	w := newReplyWorld(t)
	w.reply(time.Hour, "SM1", "I'll pay on the 15th")
	p := w.update(2*day, recoup.UpdatePause, recoup.Pause{By: "alice", Reason: "customer phoned: legal hold"})
	late := w.stateAt(30 * day) // long after the promise's pause (to 16 November) would end
	w.run()
	if p.rejected != nil {
		t.Fatalf("support's pause of a reply-paused run: %v", p.rejected)
	}
	if late.Status != recoup.StatusPaused || !late.PausedUntil.IsZero() {
		t.Fatalf("day 30: %s until %v; support's pause must hold until support resumes", late.Status, late.PausedUntil)
	}
	if n := sendsBetween(w.world, 2*day, 30*day); n != 0 {
		t.Fatalf("%d message(s) sent (at %v) while support's pause held", n, w.sendTimes)
	}
}
