package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func TestCustomerHistoryUnknownCustomer(t *testing.T) {
	st := fakes.MustStore(t)
	h, err := st.CustomerHistory(context.Background(), "cus_nobody")
	if !errors.Is(err, postgres.ErrUnknownCustomer) {
		t.Errorf("CustomerHistory(unknown) = %+v, %v; want ErrUnknownCustomer", h, err)
	}
}

func TestCustomerHistoryNewestFirst(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	// Another customer's history must not show up.
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_2", UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	// Payments recorded out of order.
	for _, p := range []struct {
		id  string
		day int
		ok  bool
	}{{"evt_m2", -60, true}, {"evt_m0", 0, false}, {"evt_m1", -30, true}} {
		e := failedEvent(p.id, "inv_"+p.id, t0.AddDate(0, 0, p.day), 2900)
		e.Attempt.Succeeded = p.ok
		if _, err := st.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	other := failedEvent("evt_other", "inv_other", t0, 100)
	other.CustomerID = "cus_2"
	if _, err := st.RecordEvent(ctx, other); err != nil {
		t.Fatal(err)
	}

	// Runs started out of order.
	for _, r := range []struct {
		wf  string
		day int
	}{{"dunning-inv_b", -40}, {"dunning-inv_c", -1}, {"dunning-inv_a", -90}} {
		if err := st.StartRun(ctx, r.wf, r.wf[len("dunning-"):], "cus_1", t0.AddDate(0, 0, r.day)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.StartRun(ctx, "dunning-inv_x", "inv_x", "cus_2", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, "dunning-inv_b", "inv_b", "cus_1", "recovered", "paid", 2, t0.AddDate(0, 0, -38)); err != nil {
		t.Fatal(err)
	}

	// Messages, created out of order.
	for _, m := range []struct {
		step   int
		ch     string
		minute int
	}{{1, "email", 1}, {3, "sms", 3}, {2, "email", 2}} {
		key := reservation("dunning-inv_c", m.step, m.ch)
		if _, _, err := st.ReserveSend(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, "UPDATE sends SET created_at = $2 WHERE idempotency_key = $1", key.Key,
			t0.Add(time.Duration(m.minute)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CompleteSend(ctx, reservation("dunning-inv_c", 3, "sms").Key, postgres.SendSent, "SM1"); err != nil {
		t.Fatal(err)
	}

	h, err := st.CustomerHistory(ctx, "cus_1")
	if err != nil {
		t.Fatalf("CustomerHistory: %v", err)
	}
	if h.Customer.CustomerID != "cus_1" || h.Customer.Plan != "pro" {
		t.Errorf("Customer = %+v", h.Customer)
	}

	var payments []string
	for _, p := range h.Payments {
		payments = append(payments, p.InvoiceID)
	}
	if want := []string{"inv_evt_m0", "inv_evt_m1", "inv_evt_m2"}; !slices.Equal(payments, want) {
		t.Errorf("payments = %v, want newest first %v", payments, want)
	}
	if len(h.Payments) == 3 {
		p := h.Payments[0]
		if p.Succeeded || p.FailureCode != "card_declined" || p.AmountMinor != 2900 || p.Currency != "USD" || !p.OccurredAt.Equal(t0) {
			t.Errorf("payment[0] = %+v", p)
		}
		if !h.Payments[1].Succeeded {
			t.Errorf("payment[1] = %+v, want succeeded", h.Payments[1])
		}
	}

	var runs []string
	for _, r := range h.Runs {
		runs = append(runs, r.WorkflowID)
	}
	if want := []string{"dunning-inv_c", "dunning-inv_b", "dunning-inv_a"}; !slices.Equal(runs, want) {
		t.Errorf("runs = %v, want newest first %v", runs, want)
	}
	if len(h.Runs) == 3 {
		if r := h.Runs[1]; r.Outcome != "recovered" || r.Steps != 2 || r.InvoiceID != "inv_b" {
			t.Errorf("finished run = %+v, want recovered after 2 steps", r)
		}
		if r := h.Runs[0]; r.Outcome != "" || !r.StartedAt.Equal(t0.AddDate(0, 0, -1)) {
			t.Errorf("running run = %+v, want no outcome", r)
		}
	}

	var steps []int
	for _, m := range h.Messages {
		steps = append(steps, m.Step)
	}
	if !slices.Equal(steps, []int{3, 2, 1}) {
		t.Errorf("message steps = %v, want newest first [3 2 1]", steps)
	}
	if len(h.Messages) == 3 {
		if m := h.Messages[0]; m.Channel != "sms" || m.Status != postgres.SendSent || m.WorkflowID != "dunning-inv_c" {
			t.Errorf("message[0] = %+v", m)
		}
		if m := h.Messages[1]; m.Status != postgres.SendReserved {
			t.Errorf("message[1] = %+v", m)
		}
	}
}

func TestCustomerHistoryEmpty(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	h, err := st.CustomerHistory(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Payments) != 0 || len(h.Runs) != 0 || len(h.Messages) != 0 {
		t.Errorf("history of a new customer = %+v, want empty", h)
	}
}

func TestFinishRunKeepsTheFirstOutcome(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	if err := st.StartRun(ctx, "dunning-inv_1", "inv_1", "cus_1", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.StartRun(ctx, "dunning-inv_1", "inv_1", "cus_1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, "dunning-inv_1", "inv_1", "cus_1", "recovered", "retry succeeded", 2, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, "dunning-inv_1", "inv_1", "cus_1", "canceled", "support", 3, t0.Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A run that ends without a recorded start is recorded too.
	if err := st.FinishRun(ctx, "dunning-inv_2", "inv_2", "cus_1", "failed", "unknown customer", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var outcome, reason string
	var steps int
	var started, ended time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT outcome, reason, steps, started_at, ended_at FROM dunning_runs WHERE workflow_id = 'dunning-inv_1'`).
		Scan(&outcome, &reason, &steps, &started, &ended); err != nil {
		t.Fatal(err)
	}
	if outcome != "recovered" || reason != "retry succeeded" || steps != 2 || !started.Equal(t0) || !ended.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("run = %s %q %d %v %v; want the first outcome (recovered after 2 steps) and the first start", outcome, reason, steps, started, ended)
	}
	h, err := st.CustomerHistory(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Runs) != 2 || h.Runs[0].WorkflowID != "dunning-inv_2" || h.Runs[0].Outcome != "failed" {
		t.Errorf("runs = %+v", h.Runs)
	}
	if err := st.FinishRun(ctx, "dunning-inv_3", "inv_3", "cus_1", "vanished", "", 0, t0); err == nil {
		t.Error("FinishRun with an unknown outcome succeeded")
	}
}

type decisionRow struct {
	channel, tone, kind, subject, message, rationale, decidedBy, model, version string
	value                                                                       int
	violations                                                                  []string
}

func readDecision(t *testing.T, st *postgres.Store, wf string, step int) decisionRow {
	t.Helper()
	var d decisionRow
	if err := st.Pool().QueryRow(context.Background(), `
		SELECT channel, tone, incentive_kind, incentive_value, subject, message, rationale, decided_by, model,
			prompt_version, violations FROM decisions WHERE workflow_id = $1 AND step = $2`, wf, step).
		Scan(&d.channel, &d.tone, &d.kind, &d.value, &d.subject, &d.message, &d.rationale, &d.decidedBy, &d.model,
			&d.version, &d.violations); err != nil {
		t.Fatalf("read decision %s/%d: %v", wf, step, err)
	}
	return d
}

func TestSaveDecisionOverwritesItsOwnRow(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	first := postgres.DecisionRow{WorkflowID: "dunning-inv_1", CustomerID: "cus_1", InvoiceID: "inv_1", Step: 1,
		Channel: "email", Tone: "friendly", IncentiveKind: "none", Subject: "Payment failed", Message: "Please update your card.",
		Rationale: "first step", DecidedBy: "llm", Model: "gpt-test", PromptVersion: "abcdef012345",
		Violations: nil}
	if err := st.SaveDecision(ctx, first); err != nil {
		t.Fatalf("SaveDecision: %v", err)
	}
	if d := readDecision(t, st, "dunning-inv_1", 1); d.violations == nil || len(d.violations) != 0 || d.decidedBy != "llm" {
		t.Errorf("first decision = %+v, want no violations", d)
	}
	step2 := first
	step2.Step = 2
	if err := st.SaveDecision(ctx, step2); err != nil {
		t.Fatal(err)
	}

	retried := first
	retried.Channel, retried.Tone, retried.IncentiveKind, retried.IncentiveValue = "sms", "firm", "extension_days", 7
	retried.Subject, retried.Message, retried.Rationale = "", "Your payment is open.", "rules step 1"
	retried.DecidedBy, retried.Model = "rules", ""
	retried.Violations = []string{"message contains a link", "tone \"rude\" is not allowed"}
	if err := st.SaveDecision(ctx, retried); err != nil {
		t.Fatalf("SaveDecision again: %v", err)
	}
	got := readDecision(t, st, "dunning-inv_1", 1)
	want := decisionRow{channel: "sms", tone: "firm", kind: "extension_days", value: 7, subject: "", message: "Your payment is open.",
		rationale: "rules step 1", decidedBy: "rules", model: "", version: "abcdef012345", violations: retried.Violations}
	if got.channel != want.channel || got.tone != want.tone || got.kind != want.kind || got.value != want.value ||
		got.subject != want.subject || got.message != want.message || got.rationale != want.rationale ||
		got.decidedBy != want.decidedBy || got.model != want.model || got.version != want.version ||
		!slices.Equal(got.violations, want.violations) {
		t.Errorf("overwritten decision = %+v\nwant %+v", got, want)
	}
	if n := count(t, st, "decisions"); n != 2 {
		t.Errorf("decisions has %d rows, want 2", n)
	}
	if d := readDecision(t, st, "dunning-inv_1", 2); d.channel != "email" {
		t.Errorf("step 2 was changed by step 1's retry: %+v", d)
	}
}

func TestSaveOfferIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	o := postgres.Offer{OfferKey: "dunning-inv_1/step-3", WorkflowID: "dunning-inv_1", InvoiceID: "inv_1", CustomerID: "cus_1",
		Kind: "extension_days", Value: 7, ExpiresAt: t0.AddDate(0, 0, 14)}
	if err := st.SaveOffer(ctx, o); err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Value = 30
	if err := st.SaveOffer(ctx, o2); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkOfferAnnounced(ctx, o.OfferKey); err != nil {
		t.Fatal(err)
	}
	var value int
	var announced *time.Time
	if err := st.Pool().QueryRow(ctx, "SELECT value, announced_at FROM offers WHERE offer_key = $1", o.OfferKey).Scan(&value, &announced); err != nil {
		t.Fatal(err)
	}
	if value != 7 || announced == nil {
		t.Errorf("offer value %d announced %v; want the first value 7, announced", value, announced)
	}
	first := *announced
	if err := st.MarkOfferAnnounced(ctx, o.OfferKey); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, "SELECT announced_at FROM offers WHERE offer_key = $1", o.OfferKey).Scan(&announced); err != nil {
		t.Fatal(err)
	}
	if !announced.Equal(first) {
		t.Errorf("announced_at moved from %v to %v", first, *announced)
	}
	bad := o
	bad.OfferKey, bad.Kind = "dunning-inv_1/step-4", "none"
	if err := st.SaveOffer(ctx, bad); err == nil {
		t.Error("SaveOffer of kind none succeeded")
	}
}
