package workflows_test

// Tests of answers to a held message racing each other, pauses and long holds (found by
// review).

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// Support sends an edit and, a moment later (same workflow task: two signals delivered
// together, e.g. through the relay), another agent rejects the held message. A rejected
// message must never go out: either the reject is refused (an edit is being checked) or
// nothing is sent for step 1.
func TestARejectRacingAnEditSignalSendsNothing(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	w.env.RegisterDelayedCallback(func() {
		w.env.SignalWorkflowSkippingWorkflowTask(recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "softer", Tone: "firm", Message: "please update your card"})
		w.env.SignalWorkflow(recoup.UpdateReject, recoup.Approval{By: "alice", Reason: "customer in dispute: do not contact"})
	}, 2*time.Hour)
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()
	rejectApplied := false
	for _, a := range st.Actions {
		if a.Action == "reject" {
			rejectApplied = true
		}
	}
	step1Sent := slices.ContainsFunc(w.sends, func(s activities.SendInput) bool { return s.Step == 1 })
	if rejectApplied && step1Sent {
		t.Fatalf("alice's reject was applied (actions %+v) yet step 1 was sent (%+v); approvals %q",
			st.Actions, w.sends[0].Decision, approvalOutcomes(st))
	}
	if len(st.Approvals) != 1 || len(st.Actions) != 1 {
		t.Fatalf("approvals %q, actions %+v: want exactly one answer applied", approvalOutcomes(st), st.Actions)
	}
	if !slices.ContainsFunc(st.Signals, func(s recoup.SignalRecord) bool { return strings.Contains(s.Note, "first answer applies") }) {
		t.Fatalf("signals %+v: want the later answer refused saying the first answer applies", st.Signals)
	}
}

// The same race with approve: alice approved the message as it stood ("approved: step 1's
// message goes out"), and a different (edited) message went out under her approval.
func TestAnApproveRacingAnEditSignalIsNotOverwritten(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	w.env.RegisterDelayedCallback(func() {
		w.env.SignalWorkflowSkippingWorkflowTask(recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "no discount", Incentive: &recoup.Incentive{Kind: recoup.IncentiveNone}, Message: "please update your card"})
		w.env.SignalWorkflow(recoup.UpdateApprove, recoup.Approval{By: "alice", Reason: "ok as is"})
	}, 2*time.Hour)
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()
	var applied []string
	for _, a := range st.Actions {
		applied = append(applied, a.Action+" by "+a.By)
	}
	if slices.Contains(applied, "approve by alice") && slices.Contains(applied, "edit by bob") {
		t.Fatalf("both answers to one held message were applied: %q (approvals %q, sent %+v)", applied, approvalOutcomes(st), w.sends[0].Decision)
	}
}

// Support pauses a run holding a message (e.g. the customer called); the approval's
// timeout would pass while paused. Nobody could be expected to approve a paused run: the
// approval's clock stands still while paused, and the time left resumes after the resume.
func TestAnApprovalTimeoutDoesNotRunOutWhilePaused(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "bob", Reason: "customer called"})
	w.update(2*day, recoup.UpdateResume, recoup.Resume{By: "bob"})
	approve := w.update(2*day+time.Hour, recoup.UpdateApprove, recoup.Approval{By: "alice"})
	w.at(6*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()
	if approve.rejected != nil {
		t.Fatalf("approve after the resume: %v; approvals %+v (the 1-day approval clock ran out while paused)", approve.rejected, st.Approvals)
	}
}

// An edit to channel none is refused (by the validator, and by the real CheckApprovalEdit:
// activities TestAnEditToChannelNoneIsRefused): to send nothing, support rejects. A
// decision with channel none never reaches a send activity.
func TestAnEditToChannelNoneNeverReachesASendActivity(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	edit := w.update(2*time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "do not send", Channel: recoup.ChannelNone,
		Incentive: &recoup.Incentive{Kind: recoup.IncentiveNone}})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if edit.rejected == nil || !strings.Contains(edit.rejected.Error(), "reject") {
		t.Fatalf("edit to channel none: %+v, want a refusal saying to reject", edit)
	}
	for _, s := range w.sends {
		if !s.Decision.Channel.Valid() {
			t.Fatalf("a send activity was called for step %d with channel %q: %+v", s.Step, s.Decision.Channel, s)
		}
	}
}

// A message held for approval for days (timeout up to 168h) moves the later steps back, as
// a pause does: approved after step 2 fell due, step 1 and step 2 do not go to the customer
// back to back (nor does the contact cap swallow step 2).
func TestALongHoldDoesNotSendTwoStepsBackToBack(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	decide := w.decide
	w.decide = func(in activities.DecideInput) recoup.Decision {
		d := decide(in)
		if d.Approval != nil {
			d.Approval.Timeout = 5 * day
		}
		return d
	}
	w.update(4*day, recoup.UpdateApprove, recoup.Approval{By: "alice", Reason: "back from holiday"})
	w.at(6*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if len(w.sendTimes) >= 2 && w.sendTimes[1]-w.sendTimes[0] < day {
		t.Fatalf("steps 1 and 2 sent at %v: %s apart", w.sendTimes[:2], w.sendTimes[1]-w.sendTimes[0])
	}
}

// An edited message is decided by support (DecidedBySupport): the edit's answer, the run's
// approvals and `starter approvals` say so, never "decided by rules".
func TestAnEditedMessageIsNotCalledDecidedByRules(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	edit := w.update(2*time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Tone: "firm"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if edit.err != nil || edit.rejected != nil {
		t.Fatalf("edit: %+v", edit)
	}
	if strings.Contains(edit.result.Message, "decided by rules") || !strings.Contains(edit.result.Message, "decided by support") {
		t.Fatalf("edit answered %q: support's edit is called a rules decision", edit.result.Message)
	}
}
