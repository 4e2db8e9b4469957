package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// The control arm (rules_plain) is "the rules' plain reminders, no model": a customer
// answering a plain reminder has the reply classified by the rules of replies.yaml, never by
// the model, so no model decision (a promise pausing the run) leaks into the control arm.
func TestControlArmRepliesAreClassifiedByTheRulesOnly(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, `{"intent":"promise_to_pay","confidence":0.92,"promised_date":"2026-12-15"}`)
	f.useLLM(t, o, 5*time.Second)
	withHoldout(t, f, 100, policy.HoldoutRulesPlain)
	if res := planRun(t, f); res.Holdout != policy.ArmControl {
		t.Fatalf("PlanRun = %+v, want the control arm", res)
	}
	res, err := f.acts.ClassifyReply(context.Background(), replyInput("I'll pay on the 15th"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(o.Requests()); n != 0 || res.DecidedBy == recoup.DecidedByLLM {
		t.Errorf("control-arm reply: %d model request(s), decided by %s, action %s until %s", n, res.DecidedBy, res.Action, res.PauseUntil)
	}
	if !strings.Contains(res.Note, "holdout control arm: classified by the rules") {
		t.Errorf("note %q does not say why the model was not asked", res.Note)
	}
}
