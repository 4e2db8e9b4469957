package activities_test

// Tests of a held message's edit and release (found by review).

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// Support edits a held email (10% off) to channel "none" — the obvious way to say "send
// nothing" in an edit form. The edit check accepts it, so the workflow goes on to deliver
// a decision with channel none and an incentive: it tells billing of the 10% offer and then
// calls SendEmail with channel none (see workflows TestAnEditToChannelNoneNeverReachesASendActivity). An
// edit must name a channel that sends, or be refused ("use reject").
func TestAnEditToChannelNoneIsRefused(t *testing.T) {
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

// The yearly incentive budget is checked when a message is decided and again when a held
// message is released (ReleaseHeldMessage, which the workflow runs before announcing the
// offer). A message may wait up to 168 h; meanwhile another run of the same customer offers
// an incentive. Approving the held message must then not announce an offer beyond the
// plan's yearly budget (pro: 20% a year): the incentive is withdrawn and the message goes
// without it, its text not promising it.
func TestApprovingAHeldOfferStaysWithinTheYearlyBudget(t *testing.T) {
	f := newFixture(t)
	holdFor(f) // discount above 5% is held
	ctx := context.Background()
	o := fakes.NewOpenAI(t, answer("email", "friendly", "discount_percent", 10, "Your payment", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	offer := func(wf, inv string, inc recoup.Incentive) {
		t.Helper()
		if _, err := f.acts.AnnounceOffer(ctx, activities.OfferInput{WorkflowID: wf, InvoiceID: inv, CustomerID: "cus_1", Step: 1,
			Incentive: inc, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	ten := recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}
	offer("dunning-inv_0", "inv_0", ten) // earlier this year: 10% of the 20% budget used
	in := decideInput(f, t)
	d, err := f.acts.DecideStrategy(ctx, in)
	if err != nil || d.Approval == nil || d.Incentive.Value != 10 {
		t.Fatalf("decision %+v (%v), want 10%% off held for approval", d, err)
	}
	offer("dunning-inv_2", "inv_2", ten) // another invoice's run offers 10% while inv_1's message waits
	// Support approves inv_1's held message as it stands: the workflow releases it, then
	// announces the offer it releases (if any).
	approved := d
	approved.Approval = nil
	res, err := f.acts.ReleaseHeldMessage(ctx, activities.ReleaseHeldInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
		History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: d, Send: &approved})
	if err != nil {
		t.Fatal(err)
	}
	if k := res.Decision.Incentive.Kind; k != recoup.IncentiveNone && k != "" {
		offer(wfID, "inv_1", res.Decision.Incentive)
	}
	used, err := f.st.OfferedSince(ctx, "cus_1", recoup.IncentiveDiscountPercent, now.AddDate(-1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if used > 20 {
		t.Fatalf("billing was told of %d%% discount this year for cus_1 (plan pro's budget: 20%%): the approved held offer was not rechecked", used)
	}
	if res.Decision.Incentive.Kind != recoup.IncentiveNone || len(res.Withdrawn) == 0 || res.Decision.Channel != recoup.ChannelEmail {
		t.Fatalf("released %+v (withdrawn %q), want the email without incentive and why", res.Decision, res.Withdrawn)
	}
	var kind string
	if err := f.st.Pool().QueryRow(ctx, `SELECT incentive_kind FROM decisions WHERE workflow_id = $1 AND step = 1`, wfID).Scan(&kind); err != nil || kind != recoup.IncentiveNone {
		t.Fatalf("decisions says step 1 offers %q (%v), want none", kind, err)
	}
}

// The recovery report (internal/report) credits runs to the channel, tone and incentive in
// the decisions table. A held message that support edits is stored as it was held (the
// model's 10% by email): CheckApprovalEdit stores nothing, so a recovery after support sent
// a 7-day extension by SMS is reported as won by a 10% email discount (and a rejected
// message, never sent, counts too).
func TestAnEditedHeldMessageIsWhatTheDecisionsTableSays(t *testing.T) {
	f := newFixture(t)
	holdFor(f)
	ctx := context.Background()
	o := fakes.NewOpenAI(t, answer("email", "friendly", "discount_percent", 10, "Your payment", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	in := decideInput(f, t)
	held, err := f.acts.DecideStrategy(ctx, in)
	if err != nil || held.Approval == nil {
		t.Fatalf("decision %+v (%v), want it held", held, err)
	}
	res, err := f.acts.CheckApprovalEdit(ctx, activities.CheckEditInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
		History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: held,
		Edit: recoup.ApprovalEdit{By: "bob", Reason: "no discount", Channel: recoup.ChannelSMS,
			Incentive: &recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}, Message: "Please update your card."}})
	if err != nil || len(res.Violations) > 0 {
		t.Fatalf("edit: %+v, %v", res, err)
	}
	var channel, kind, decidedBy string
	if err := f.st.Pool().QueryRow(ctx, `SELECT channel, incentive_kind, decided_by FROM decisions WHERE workflow_id = $1 AND step = 1`, wfID).
		Scan(&channel, &kind, &decidedBy); err != nil {
		t.Fatal(err)
	}
	if channel != string(recoup.ChannelSMS) || kind != recoup.IncentiveExtensionDays {
		t.Fatalf("decisions says step 1 was %s / %s / decided by %s; support sent sms / extension_days", channel, kind, decidedBy)
	}
}

// A rejected held message sends nothing: the decisions table says so (channel none, no
// incentive), so the recovery report never credits a message the customer never read.
func TestARejectedHeldMessageIsNoMessageInTheDecisionsTable(t *testing.T) {
	f := newFixture(t)
	holdFor(f)
	ctx := context.Background()
	o := fakes.NewOpenAI(t, answer("email", "friendly", "discount_percent", 10, "Your payment", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	in := decideInput(f, t)
	held, err := f.acts.DecideStrategy(ctx, in)
	if err != nil || held.Approval == nil {
		t.Fatalf("decision %+v (%v), want it held", held, err)
	}
	if _, err := f.acts.ReleaseHeldMessage(ctx, activities.ReleaseHeldInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
		History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: held, Why: "rejected: key account"}); err != nil {
		t.Fatal(err)
	}
	var channel, kind string
	if err := f.st.Pool().QueryRow(ctx, `SELECT channel, incentive_kind FROM decisions WHERE workflow_id = $1 AND step = 1`, wfID).
		Scan(&channel, &kind); err != nil {
		t.Fatal(err)
	}
	if channel != string(recoup.ChannelNone) || kind != recoup.IncentiveNone {
		t.Fatalf("decisions says step 1 was %s / %s; nothing was sent", channel, kind)
	}
}
