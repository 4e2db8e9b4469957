package workflows_test

// Hostile-review tests (branch review1). Each test states the behaviour a customer, billing
// or support would expect and fails on the change under review.

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
func TestReview1_RejectRacingAnEditSignalSendsNothing(t *testing.T) {
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
}

// The same race with approve: alice approved the message as it stood ("approved: step 1's
// message goes out"), and a different (edited) message went out under her approval.
func TestReview1_ApproveRacingAnEditSignalIsNotOverwritten(t *testing.T) {
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
// timeout passes while paused. Nobody could be expected to approve a paused run, yet the
// timeout decides the held message while paused: after the resume, the approval is refused
// ("not awaiting approval") and step 1 was skipped without any human answer.
func TestReview1_ApprovalTimeoutDoesNotRunOutWhilePaused(t *testing.T) {
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

// An edit to channel none (accepted by the real CheckApprovalEdit: activities
// TestReview1_AnEditToChannelNoneIsRefused) is delivered: runStep checks Channel.Valid()
// only before the hold, so the workflow calls SendEmail with channel none (the real
// activity then fails it as invalid input and the step is recorded as a failed send).
func TestReview1_EditToChannelNoneNeverReachesASendActivity(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	edit := w.update(2*time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "do not send", Channel: recoup.ChannelNone,
		Incentive: &recoup.Incentive{Kind: recoup.IncentiveNone}})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if edit.rejected != nil || edit.err != nil {
		return // refused: fine
	}
	for _, s := range w.sends {
		if !s.Decision.Channel.Valid() {
			t.Fatalf("a send activity was called for step %d with channel %q: %+v", s.Step, s.Decision.Channel, s)
		}
	}
}

// A message held for approval for days (timeout up to 168h) does not move the later steps
// back, as a pause does: approved after step 2 fell due, step 1 and step 2 go to the
// customer back to back (or the contact cap swallows step 2).
func TestReview1_ALongHoldDoesNotSendTwoStepsBackToBack(t *testing.T) {
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

// The current details promise at most three lines (the Web UI shows three), but a support
// reason is copied in verbatim: a pause reason pasted with blank lines (a ticket excerpt)
// adds paragraphs, so the Web UI shows the ticket instead of what happens next.
func TestReview1_DetailsStayWithinThreeLinesWhateverTheReason(t *testing.T) {
	w := newWorld(t)
	w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "alice", Reason: "ticket 4411:\n\ncustomer says card replaced\n\nwill call back"})
	var raw, details string
	w.rawQuery(2*time.Hour, &raw, &details)
	w.at(3*time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if n := len(strings.Split(details, "\n\n")); n > 3 {
		t.Fatalf("details have %d paragraphs:\n%s", n, details)
	}
}

// An edited message is decided by support (DecidedBySupport), yet the edit's answer, the
// run's approvals and `starter approvals` describe it as "decided by rules".
func TestReview1_AnEditedMessageIsNotCalledDecidedByRules(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	edit := w.update(2*time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Tone: "firm"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if edit.err != nil || edit.rejected != nil {
		t.Fatalf("edit: %+v", edit)
	}
	if strings.Contains(edit.result.Message, "decided by rules") {
		t.Fatalf("edit answered %q: support's edit is called a rules decision", edit.result.Message)
	}
}
