package report_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// attrFixture seeds runs for ExperimentRuns: each run on its own invoice (amount 10000 USD,
// customer cus), started at since + the run's start offset.
type attrFixture struct {
	fixture
}

func (f attrFixture) run(id, outcome, reason string, start, end time.Duration) {
	f.t.Helper()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ($1, 'cus', 10000, 'usd', 'open', $2, $2)`, "inv_"+id, since)
	if outcome == "" {
		f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, started_at) VALUES ($1, $2, 'cus', $3)`,
			id, "inv_"+id, since.Add(start))
		return
	}
	f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, reason, steps, started_at, ended_at)
		VALUES ($1, $2, 'cus', $3, $4, 1, $5, $6)`, id, "inv_"+id, outcome, reason, since.Add(start), since.Add(end))
}

// event records a billing event of the run's invoice that occurred at since + at.
func (f attrFixture) event(id, typ, source string, at time.Duration) {
	f.t.Helper()
	f.exec(`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		VALUES ($1, $2, $3, $4, 'cus', $5, '{}')`, fmt.Sprintf("evt_%s_%s", id, typ), typ, source, "inv_"+id, since.Add(at))
}

// sent records the run's message of a step, sent at since + at.
func (f attrFixture) sent(id string, step int, channel string, at time.Duration) {
	f.t.Helper()
	f.exec(`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'cus', $5, 'sent', $6, $6)`,
		fmt.Sprintf("%s/%d/%s", id, step, channel), id, step, channel, "inv_"+id, since.Add(at))
}

// clicked records the provider's click event on the run's message of a step at since + at.
func (f attrFixture) clicked(id string, step int, channel string, at time.Duration) {
	f.t.Helper()
	f.exec(`INSERT INTO provider_events (provider, provider_event_id, idempotency_key, kind, occurred_at, body)
		VALUES ('sendgrid', $1, $2, 'clicked', $3, '{}')`, fmt.Sprintf("click_%s_%d", id, step),
		fmt.Sprintf("%s/%d/%s", id, step, channel), since.Add(at))
}

const (
	h = time.Hour
	d = 24 * time.Hour
)

// The seeded runs and what the analysis must see of them (window 28 days):
//
//	before    paid 1 h in, nothing sent                           before_message
//	retry     email at 1 h, billing's retry succeeded on day 2    billing_retry
//	message   email 1 h, SMS day 3, paid day 4 (10% offered;      after_message step 2 sms,
//	          billing reports 9000 paid)                          cost 1000, paid 9000
//	click     email 1 h (clicked day 3), SMS day 3, paid day 4    after_click step 1 email
//	support   email 1 h, payment recorded by hand (starter event) support
//	edited    support's edit sent at step 1, paid day 2           support (step 1 email)
//	legacy    no settle event; reason "retry r1 succeeded"        billing_retry (from the reason)
//	late      email 1 h, paid day 30                              neither (outside the window)
//	canceled  canceled day 5                                      lost
//	lateloss  exhausted day 31                                    neither
//	killed    no outcome; terminated day 2 (run_outcomes)         lost
//	open      no outcome                                          neither
//	control   holdout control, plan pro, paid day 1, nothing sent before_message, arm control
//	old       started before since                                excluded
func seedAttribution(t *testing.T, f attrFixture) {
	f.run("before", "recovered", "paid another way", 0, 2*h)
	f.event("before", "payment.recovered", "http", h)

	f.run("retry", "recovered", "retry r1 succeeded", d, 3*d)
	f.sent("retry", 1, "email", d+h)
	f.event("retry", "payment.retry_succeeded", "http", 3*d)

	f.run("message", "recovered", "paid another way", 2*d, 6*d+h)
	f.decision("message", 1, "A", "email", "friendly", "none", 0)
	f.decision("message", 2, "A", "sms", "firm", "discount_percent", 10)
	f.offer("message", 2, "discount_percent", 10)
	f.sent("message", 1, "email", 2*d+h)
	f.sent("message", 2, "sms", 5*d)
	f.event("message", "payment.recovered", "http", 6*d)
	f.exec(`INSERT INTO payment_attempts (event_id, invoice_id, customer_id, outcome, amount_minor, currency, occurred_at)
		VALUES ('evt_message_payment.recovered', 'inv_message', 'cus', 'succeeded', 9000, 'USD', $1)`, since.Add(6*d))

	f.run("click", "recovered", "paid another way", 3*d, 7*d+h)
	f.exec(`INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind,
			message, rationale, decided_by, prompt_version) VALUES ('click', 1, 'cus', 'inv_click', 'email', 'friendly', 'none', 'm', 'r', 'rules', 'v1')`)
	f.sent("click", 1, "email", 3*d+h)
	f.clicked("click", 1, "email", 6*d)
	f.sent("click", 2, "sms", 6*d+h)
	f.event("click", "payment.recovered", "http", 7*d)

	f.run("support", "recovered", "paid another way", 4*d, 5*d+h)
	f.sent("support", 1, "email", 4*d+h)
	f.event("support", "payment.recovered", "cli", 5*d)

	f.run("edited", "recovered", "paid another way", 5*d, 7*d+h)
	f.exec(`INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind,
			message, rationale, decided_by, prompt_version) VALUES ('edited', 1, 'cus', 'inv_edited', 'email', 'friendly', 'none', 'm', 'r', 'support', 'v1')`)
	f.sent("edited", 1, "email", 5*d+h)
	f.event("edited", "payment.recovered", "http", 7*d)

	f.run("legacy", "recovered", "retry r1 succeeded", 6*d, 8*d)

	f.run("late", "recovered", "paid another way", 7*d, 37*d+h)
	f.sent("late", 1, "email", 7*d+h)
	f.event("late", "payment.recovered", "http", 37*d)

	f.run("canceled", "canceled", "canceled by billing", 8*d, 13*d)
	f.sent("canceled", 1, "email", 8*d+h)
	f.run("lateloss", "exhausted", "", 9*d, 40*d)
	f.run("killed", "", "", 10*d, 0)
	f.exec(`INSERT INTO run_outcomes (workflow_id, run_id, invoice_id, outcome, recorded_status, closed_at)
		VALUES ('dunning-inv_killed', 'r1', 'inv_killed', 'terminated', 'active', $1)`, since.Add(12*d))
	f.run("open", "", "", 11*d, 0)

	f.run("control", "recovered", "paid another way", 12*d, 13*d+h)
	f.exec(`UPDATE dunning_runs SET holdout = 'control', holdout_treatment = 'no_messages' WHERE workflow_id = 'control'`)
	f.exec(`INSERT INTO customers (customer_id, plan, profile_updated_at) VALUES ('cus_pro', 'pro', $1)`, since)
	f.exec(`UPDATE dunning_runs SET customer_id = 'cus_pro' WHERE workflow_id = 'control'`)
	f.event("control", "payment.recovered", "http", 13*d)

	f.run("old", "recovered", "paid another way", -time.Second, h)
}

func TestExperimentRunsAttributesEachRecovery(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	seedAttribution(t, f)
	got, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 28*d)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(id string, startDay, paidAt time.Duration, attr string, step int, ch string, msgs int) experiment.Run {
		return experiment.Run{WorkflowID: id, InvoiceID: "inv_" + id, StartedAt: since.Add(startDay), Currency: "USD",
			AmountDueMinor: 10000, Recovered: true, RecoveredAt: since.Add(paidAt), TimeToRecover: paidAt - startDay,
			RecoveredAmountMinor: 10000, Attribution: attr, AttributedStep: step, AttributedChannel: ch, MessagesSent: msgs}
	}
	notRec := func(id string, startDay time.Duration, lost bool, msgs int) experiment.Run {
		return experiment.Run{WorkflowID: id, InvoiceID: "inv_" + id, StartedAt: since.Add(startDay), Currency: "USD",
			AmountDueMinor: 10000, Lost: lost, MessagesSent: msgs}
	}
	message := rec("message", 2*d, 6*d, experiment.AttributionAfterMessage, 2, "sms", 2)
	message.Variant, message.DecidedBy, message.IncentiveCostMinor, message.RecoveredAmountMinor = "A", "llm", 1000, 9000
	click := rec("click", 3*d, 7*d, experiment.AttributionAfterClick, 1, "email", 2)
	// DecidedBy is the first decision the model answered: the rules' and support's decisions
	// below recorded no model answer, so these runs are out of the model-vs-rules comparison.
	edited := rec("edited", 5*d, 7*d, experiment.AttributionSupport, 1, "email", 1)
	control := rec("control", 12*d, 13*d, experiment.AttributionBeforeMessage, 0, "", 0)
	control.Holdout, control.Segment = "control:no_messages", "pro"
	want := []experiment.Run{
		rec("before", 0, h, experiment.AttributionBeforeMessage, 0, "", 0),
		rec("retry", d, 3*d, experiment.AttributionBillingRetry, 0, "", 1),
		message,
		click,
		rec("support", 4*d, 5*d, experiment.AttributionSupport, 0, "", 1),
		edited,
		rec("legacy", 6*d, 8*d, experiment.AttributionBillingRetry, 0, "", 0),
		notRec("late", 7*d, false, 1),
		notRec("canceled", 8*d, true, 1),
		notRec("lateloss", 9*d, false, 0),
		notRec("killed", 10*d, true, 0),
		notRec("open", 11*d, false, 0),
		control,
	}
	if len(got) != len(want) {
		t.Errorf("got %d runs, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g := got[i]
		g.RecoveredAt = g.RecoveredAt.UTC()
		w := want[i]
		w.RecoveredAt = w.RecoveredAt.UTC()
		if !w.Recovered {
			w.RecoveredAt = time.Time{}
		}
		if g != w {
			t.Errorf("run %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// The window decides: with 31 days, the run paid on day 30 is recovered and the run
// exhausted on day 31 lost.
func TestExperimentRunsWindowCutOff(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	seedAttribution(t, f)
	got, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 31*d)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]experiment.Run{}
	for _, r := range got {
		by[r.WorkflowID] = r
	}
	if r := by["late"]; !r.Recovered || r.Attribution != experiment.AttributionAfterMessage || r.TimeToRecover != 30*d {
		t.Errorf("late run with a 31-day window: %+v", r)
	}
	if r := by["lateloss"]; !r.Lost {
		t.Errorf("run exhausted on day 31 with a 31-day window: %+v", r)
	}
	// The default window is 28 days.
	got, err = report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.WorkflowID == "late" && r.Recovered {
			t.Errorf("default window: the run paid on day 30 counts as recovered")
		}
	}
}

// A run that ends recovered through FinishRun has its attribution recorded then, as a
// snapshot; the loader derives it again, so a click webhook that arrives after the run ended
// is credited in the report while the snapshot keeps what was known at the end.
func TestFinishRunRecordsTheAttribution(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_rec', 'cus', 5000, 'EUR', 'open', $1, $1)`, since)
	if err := st.StartRun(ctx, "rec", "inv_rec", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.sent("rec", 1, "email", h)
	f.event("rec", "payment.recovered", "http", 2*d)
	if err := st.FinishRun(ctx, "rec", "inv_rec", "cus", "recovered", "paid another way", 1, since.Add(2*d+h)); err != nil {
		t.Fatal(err)
	}
	var attr, ch string
	var step int
	var at time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT attribution, attributed_step, attributed_channel, recovered_at
		FROM dunning_runs WHERE workflow_id = 'rec'`).Scan(&attr, &step, &ch, &at); err != nil {
		t.Fatal(err)
	}
	if attr != experiment.AttributionAfterMessage || step != 1 || ch != "email" || !at.Equal(since.Add(2*d)) {
		t.Fatalf("recorded %s step %d %s at %s; want after_message step 1 email at day 2", attr, step, ch, at)
	}
	f.clicked("rec", 1, "email", d) // arrives after the run ended: the report credits it
	got, err := report.ExperimentRuns(ctx, st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if attr, _, _ := recordedAttribution(t, f, "rec"); attr != experiment.AttributionAfterMessage {
		t.Errorf("the snapshot recorded at the run's end changed to %s", attr)
	}
	if len(got) != 1 || got[0].Attribution != experiment.AttributionAfterClick || got[0].TimeToRecover != 2*d ||
		got[0].Currency != "EUR" || got[0].RecoveredAmountMinor != 5000 {
		t.Fatalf("runs = %+v", got)
	}
}
