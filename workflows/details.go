package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/recoup-dunning/recoup"
)

// maxDetailLine bounds each line of the current details (the Web UI shows three lines and
// clips long ones).
const maxDetailLine = 100

// detailLines are the run's current details in at most three short lines: its status and
// step; what will really happen next (nothing for an ended run, no step time for a paused
// one); and the newest decision or reply.
func detailLines(st recoup.State) []string { return detailLinesAt(st, time.Time{}) }

// detailLinesAt is detailLines at the run's clock now: the retry advice shows on the second
// line while its time is ahead (zero now: always).
func detailLinesAt(st recoup.State, now time.Time) []string {
	head := fmt.Sprintf("**%s** · step %d of %d", st.Status, st.Step, st.TotalSteps)
	lines := []string{head}
	next, last, retry := nextLine(st), lastLine(st), retryAhead(st, now)
	switch {
	case retry == "":
	case next == "":
		next = retry
	case len([]rune(next))+3+len([]rune(retry)) <= maxDetailLine:
		next += " · " + retry
	default: // what happens next outranks the last decision
		last = retry
	}
	if next != "" {
		lines = append(lines, next)
	}
	if last != "" {
		lines = append(lines, last)
	}
	for i, l := range lines {
		// One line each whatever a reason or a reply holds: the details are joined by blank
		// lines, so a newline in a reason would make paragraphs of its own.
		lines[i] = clip(strings.Join(strings.Fields(l), " "), maxDetailLine)
	}
	return lines
}

// nextLine says what the run waits for, by status.
func nextLine(st recoup.State) string {
	switch st.Status {
	case recoup.StatusPaused:
		if !st.PausedUntil.IsZero() {
			return fmt.Sprintf("Paused until %s: %s", when(st.PausedUntil), st.Reason)
		}
		return withReason("Paused"+byWhom(st, "pause")+" until resumed", st.Reason)
	case recoup.StatusNeedsAttention:
		return withReason("Waits for support (resolve, resume or cancel)", st.Reason)
	case recoup.StatusHeld:
		if st.Hold != nil {
			return fmt.Sprintf("Held by %s until released (at most until %s)", st.Hold.IncidentID, when(st.Hold.Until))
		}
		return withReason("Held until released", st.Reason)
	case recoup.StatusAwaitingApproval:
		if p := st.Approval; p != nil {
			return fmt.Sprintf("Step %d waits for approve/reject/edit (%s); then %s at %s", p.Step,
				strings.Join(p.Rules, ", "), p.OnTimeout, when(p.Until))
		}
		return withReason("Waits for approval", st.Reason)
	case recoup.StatusActive:
		next := "Working on step " + fmt.Sprint(st.Step)
		if st.Step == 0 {
			next = "Planning the run"
		}
		if st.NextAction != "" {
			next = fmt.Sprintf("Next: %s at %s", st.NextAction, when(st.NextActionAt))
		}
		if st.NextChannel != "" {
			next += " · next message by " + string(st.NextChannel) + " (support)"
		}
		return next
	}
	if !st.Status.Ended() {
		return withReason("Waiting ("+string(st.Status)+")", st.Reason)
	}
	// Ended: the outcome only.
	if st.Status == recoup.StatusCanceled {
		return withReason("Canceled"+byWhom(st, "cancel"), st.Reason)
	}
	return withReason(outcomeWord(st.Status), st.Reason)
}

// lastLine is the newest reply while it is what the run waits on, else the last decision.
func lastLine(st recoup.State) string {
	nr, nd := len(st.Replies), len(st.Decisions)
	replyMatters := st.Status == recoup.StatusNeedsAttention || (st.Status == recoup.StatusPaused && !st.PausedUntil.IsZero())
	switch {
	case st.Approval != nil:
		return "Held: " + decisionLine(st.Approval.Held)
	case nr > 0 && (replyMatters || nd == 0):
		return replyLine(st.Replies[nr-1])
	case nd > 0:
		return "Last decision: " + decisionLine(st.Decisions[nd-1])
	}
	return ""
}

// byWhom is " by <who>" of the newest support action named action, if it says who.
func byWhom(st recoup.State, action string) string {
	for i := len(st.Actions) - 1; i >= 0; i-- {
		if a := st.Actions[i]; a.Action == action {
			if a.By == "" {
				return ""
			}
			return " by " + a.By
		}
	}
	return ""
}

func outcomeWord(s recoup.Status) string {
	switch s {
	case recoup.StatusRecovered:
		return "Recovered"
	case recoup.StatusExhausted:
		return "Exhausted"
	case recoup.StatusFailed:
		return "Failed"
	}
	return string(s)
}

func withReason(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + ": " + reason
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// clip cuts s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
