package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/workflows"
)

// The Web UI shows three lines of a run's current details: they must say only what will
// really happen next, for every status.
func TestCurrentDetailsSayOnlyWhatHappensNextForEveryStatus(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 33, 0, 0, time.UTC)
	dec := recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}, DecidedBy: recoup.DecidedByRules}
	reply := recoup.ReplyRecord{Channel: recoup.ChannelSMS, Text: "this charge is not mine, I never ordered anything from you people", Intent: recoup.IntentDispute, Confidence: 0.9, DecidedBy: recoup.DecidedByRules, Action: recoup.ReplyStopEscalate}
	base := func(s recoup.Status) recoup.State {
		return recoup.State{Status: s, Step: 1, TotalSteps: 3, Decisions: []recoup.Decision{dec},
			NextAction: "step 2", NextActionAt: at, NextChannel: recoup.ChannelSMS}
	}
	paused := base(recoup.StatusPaused)
	paused.Reason = "customer called"
	multiline := base(recoup.StatusPaused)
	multiline.Reason = "ticket 4411:\n\ncustomer says card replaced\n\nwill call back"
	multiline.Actions = []recoup.ActionRecord{{Action: "pause", By: "alice", Reason: multiline.Reason}}
	paused.Actions = []recoup.ActionRecord{{Action: "pause", By: "alice", Reason: "customer called"}}
	promised := base(recoup.StatusPaused)
	promised.Reason, promised.PausedUntil = "customer promised to pay on 2026-12-05", at.Add(96*time.Hour)
	promised.Replies = []recoup.ReplyRecord{{Channel: recoup.ChannelSMS, Text: "I will pay on friday", Intent: recoup.IntentPromiseToPay, Action: recoup.ReplyPauseUntil}}
	attention := base(recoup.StatusNeedsAttention)
	attention.Reason, attention.Replies = "customer replied: dispute_or_fraud", []recoup.ReplyRecord{reply}
	held := base(recoup.StatusHeld)
	held.Hold = &recoup.Hold{IncidentID: "inc-1", Since: at, Until: at.Add(48 * time.Hour)}
	canceled := base(recoup.StatusCanceled)
	canceled.Reason, canceled.Actions = "refunded", []recoup.ActionRecord{{Action: "cancel", By: "dave"}}
	canceled.NextAction = "" // what the run clears when it ends
	awaiting := base(recoup.StatusAwaitingApproval)
	awaiting.NextAction, awaiting.NextActionAt = "approval of step 1 (else skip)", at
	heldDec := dec
	heldDec.Incentive = recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}
	awaiting.Approval = &recoup.PendingApproval{Step: 1, Rules: []string{"plan enterprise"}, Held: heldDec, Since: at, Until: at.Add(24 * time.Hour), OnTimeout: "skip"}
	recovered := base(recoup.StatusRecovered)
	recovered.Reason = "payment.retry_succeeded"
	for _, c := range []struct {
		name  string
		st    recoup.State
		want  []string
		never []string
	}{
		{"active", base(recoup.StatusActive), []string{"**active** · step 1 of 3", "Next: step 2 at 2026-12-01 17:33 UTC · next message by sms (support)", "Last decision: Email · friendly"}, nil},
		{"paused by support", paused, []string{"**paused**", "Paused by alice until resumed: customer called"}, []string{"step 2 at", "17:33", "Next message"}},
		{"a reason of several paragraphs", multiline, []string{"Paused by alice until resumed: ticket 4411: customer says card replaced will call back"}, nil},
		{"paused by a promise", promised, []string{"Paused until 2026-12-05 17:33 UTC: customer promised", "Reply by sms"}, []string{"step 2 at", "Next"}},
		{"needs attention", attention, []string{"Waits for support (resolve, resume or cancel): customer replied: dispute_or_fraud", "Reply by sms", "dispute_or_fraud (0.90"}, []string{"17:33", "Next"}},
		{"held", held, []string{"Held by inc-1 until released (at most until 2026-12-03 17:33 UTC)"}, []string{"step 2 at", "Next"}},
		{"awaiting approval", awaiting, []string{"**awaiting_approval**", "Step 1 waits for approve/reject/edit (plan enterprise); then skip at 2026-12-02 17:33 UTC", "Held: Email · friendly · 10% off"}, []string{"Last decision", "Next:"}},
		{"canceled", canceled, []string{"**canceled**", "Canceled by dave: refunded"}, []string{"Next", "sms", "17:33"}},
		{"recovered", recovered, []string{"Recovered: payment.retry_succeeded"}, []string{"Next", "17:33"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lines := workflows.DetailLines(c.st)
			all := strings.Join(lines, "\n")
			if len(lines) > 3 {
				t.Errorf("%d lines, the Web UI shows 3:\n%s", len(lines), all)
			}
			for _, l := range lines {
				if strings.ContainsAny(l, "\r\n") {
					t.Errorf("line %q spans several lines (the details are joined by blank lines)", l)
				}
				if n := len([]rune(l)); n > 100 {
					t.Errorf("line of %d characters: %q", n, l)
				}
			}
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("details lack %q:\n%s", w, all)
				}
			}
			for _, n := range c.never {
				if strings.Contains(all, n) {
					t.Errorf("details say %q, which will not happen:\n%s", n, all)
				}
			}
		})
	}
}

func TestTimerSummariesWriteDurationsForPeople(t *testing.T) {
	for d, want := range map[time.Duration]string{
		72 * time.Hour: "3 days", 28 * time.Hour: "1 day 4h", 150 * time.Minute: "2h30m",
		45 * time.Minute: "45m", 30 * time.Second: "30s", 24*time.Hour + 90*time.Second: "1 day 2m",
	} {
		if got := workflows.HumanDuration(d); got != want {
			t.Errorf("%s reads %q, want %q", d, got, want)
		}
	}
}
