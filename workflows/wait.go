package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
)

// waitResult is how a wait ended.
type waitResult int

const (
	waitDone          waitResult = iota // the time came (or support acted now)
	waitEnded                           // the run ended (or Temporal canceled it)
	waitContinueAsNew                   // the history is long: continue as new from here
)

// continueAsNewAfterEvents is the history length past which a waiting run continues as new
// (the server also suggests it); tests lower it.
var continueAsNewAfterEvents = 10_000

// maxClockSkew bounds how far in the future an event's occurred_at may be: beyond it the
// run's clock is used for ordering (the ingress clamps too, and records the clamp).
const maxClockSkew = 5 * time.Minute

// clampFuture returns t, or now+maxClockSkew when t lies further in the future.
func clampFuture(t, now time.Time) time.Time {
	if limit := now.Add(maxClockSkew); t.After(limit) {
		return limit
	}
	return t
}

// waitUntil blocks until the time at() returns while the run is active, and for as long as
// it is paused (at() may move back by the pause). Act-now ends it only for the kinds that
// allow it; a step or final wait may also end in continue-as-new.
func (d *dunning) waitUntil(ctx workflow.Context, at func() time.Time, what string, kind waitKind) waitResult {
	canContinue := kind == waitStep || kind == waitFinal
	defer func() { d.waiting = waitNone }()
	for {
		if d.state.Status.Ended() || ctx.Err() != nil {
			return waitEnded
		}
		if canContinue && d.historyLong(ctx) {
			return waitContinueAsNew
		}
		t := at()
		d.state.NextAction, d.state.NextActionAt = what, t
		if d.pausedLike() {
			// Paused, the step has no time: it comes only once the run goes on.
			d.state.NextActionAt = time.Time{}
			d.waiting = waitNone
			d.updateDetails(ctx)
			if err := d.waitWhilePaused(ctx, canContinue); err != nil {
				return waitEnded
			}
			continue
		}
		now := workflow.Now(ctx)
		if kind == waitStep && d.state.RetryWait == retryFailed {
			d.state.RetryWait = "" // a failed retry: act on the step now
			d.actNowPending = false
			d.state.NextAction, d.state.NextActionAt = "", time.Time{}
			return waitDone
		}
		if d.actNowPending && kind.actNowEnds() {
			d.actNowPending = false
			d.state.NextAction, d.state.NextActionAt = "", time.Time{}
			return waitDone
		}
		if !now.Before(t) {
			d.state.NextAction, d.state.NextActionAt = "", time.Time{}
			return waitDone
		}
		d.waiting = kind
		d.updateDetails(ctx)
		status := d.state.Status
		if _, err := awaitFor(ctx, t.Sub(now), waitSummary(kind, what, t, t.Sub(now)), func() bool {
			return d.state.Status != status || d.actNowPending || (canContinue && d.historyLong(ctx)) ||
				(kind == waitStep && d.state.RetryWait == retryFailed)
		}); err != nil {
			return waitEnded
		}
		d.waiting = waitNone
	}
}

// awaitFor is workflow.AwaitWithTimeout with a timer whose summary says what the run waits
// for: the Web UI's history and timeline show it instead of "AwaitWithTimeout". A summary is
// user metadata of the timer command, not part of what replay compares (the timer id is), so
// it needs no versioned change (the replay tests over recorded histories prove it).
func awaitFor(ctx workflow.Context, d time.Duration, summary string, cond func() bool) (bool, error) {
	return workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: d, TimerOptions: workflow.TimerOptions{Summary: summary}}, cond)
}

// waitSummary is a wait's timer summary, e.g. "wait for step 2 (3 days)".
func waitSummary(kind waitKind, what string, at time.Time, d time.Duration) string {
	switch kind {
	case waitStep:
		return fmt.Sprintf("wait for %s (%s)", what, humanDuration(d))
	case waitFinal:
		return fmt.Sprintf("wait for a retry outcome, then exhaust (%s)", humanDuration(d))
	case waitHours:
		return fmt.Sprintf("quiet hours until %s, then %s", at.UTC().Format("2006-01-02 15:04 MST"), what)
	}
	return fmt.Sprintf("%s (%s)", what, humanDuration(d))
}

// humanDuration is d for people: "3 days", "1 day 4h", "2h30m", "45m", "30s".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	switch {
	case days == 1:
		parts = append(parts, "1 day")
	case days > 1:
		parts = append(parts, fmt.Sprintf("%d days", days))
	}
	switch {
	case h > 0 && m > 0:
		parts = append(parts, fmt.Sprintf("%dh%dm", h, m))
	case h > 0:
		parts = append(parts, fmt.Sprintf("%dh", h))
	case m > 0:
		parts = append(parts, fmt.Sprintf("%dm", m))
	}
	return strings.Join(parts, " ")
}

// historyLong reports whether the run should continue as new.
func (d *dunning) historyLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= continueAsNewAfterEvents
}

// continueAsNew carries the run's state into a new run of the same workflow ID, after every
// signal and update received so far has been applied.
func (d *dunning) continueAsNew(ctx workflow.Context) (recoup.DunningResult, error) {
	_ = workflow.Await(ctx, func() bool { return !d.signalsPending() && workflow.AllHandlersFinished(ctx) })
	if d.state.Status.Ended() {
		return d.end(ctx)
	}
	d.log.Info("continuing as new to keep the history short", "history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	in := d.in
	in.Continued = &recoup.Continuation{
		State: d.state, Seen: d.seenOrder, Excluded: d.excluded, FailureCode: d.failureCode,
		PausedAt: d.pausedAt, PausedFor: d.pausedFor, Schedule: d.schedule, FinalWait: d.finalWait,
		NextStep: d.nextStep, ExhaustAt: d.exhaustAt, ExhaustPausedFor: d.exhaustPaused,
		PendingReplies: d.pendingReplies,
	}
	in.Continued.State.NextAction, in.Continued.State.NextActionAt = "", time.Time{}
	return recoup.DunningResult{}, workflow.NewContinueAsNewError(ctx, DunningWorkflow, in)
}

// restore takes over the state a previous run carried.
func (d *dunning) restore(c *recoup.Continuation) {
	d.state = c.State
	for _, id := range c.Seen {
		d.remember(id)
	}
	d.excluded = c.Excluded
	d.failureCode = c.FailureCode
	d.pausedAt, d.pausedFor = c.PausedAt, c.PausedFor
	d.schedule, d.finalWait, d.nextStep = c.Schedule, c.FinalWait, c.NextStep
	d.exhaustAt, d.exhaustPaused = c.ExhaustAt, c.ExhaustPausedFor
	d.pendingReplies = c.PendingReplies
}
