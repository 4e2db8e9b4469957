package activities_test

// Hostile-review tests (branch review1).

import (
	"context"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// Support edits a held email (10% off) to channel "none" — the obvious way to say "send
// nothing" in an edit form. The edit check accepts it, so the workflow goes on to deliver
// a decision with channel none and an incentive: it tells billing of the 10% offer and then
// calls SendEmail with channel none (see workflows TestReview1_EditToChannelNone...). An
// edit must name a channel that sends, or be refused ("use reject").
func TestReview1_AnEditToChannelNoneIsRefused(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	held := recoup.Decision{Step: 1, Channel: recoup.ChannelEmail, Tone: "friendly", Subject: "Your payment",
		Message: "Your card was declined. Updating it takes a minute.", Incentive: recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10},
		DecidedBy: recoup.DecidedByLLM, PromptVersion: "v1"}
	res, err := f.acts.CheckApprovalEdit(context.Background(), activities.CheckEditInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
		History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: held,
		Edit: recoup.ApprovalEdit{By: "bob", Reason: "do not send", Channel: recoup.ChannelNone}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatalf("edit to channel none accepted: sends %+v (channel %q, incentive %+v)", res.Decision, res.Decision.Channel, res.Decision.Incentive)
	}
}
