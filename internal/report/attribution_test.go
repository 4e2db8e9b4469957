package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// Attribution precedence: which payment, which message, which click.

// recordedAttribution reads what FinishRun recorded for the run.
func recordedAttribution(t *testing.T, f attrFixture, id string) (attr string, step int, ch string) {
	t.Helper()
	if err := f.pool.QueryRow(context.Background(), `SELECT attribution, attributed_step, attributed_channel
		FROM dunning_runs WHERE workflow_id = $1`, id).Scan(&attr, &step, &ch); err != nil {
		t.Fatal(err)
	}
	return attr, step, ch
}

// The relay was behind: the invoice failed, the customer paid 30 minutes later, and the run
// (started_at = workflow.Now when the late payment.failed arrived) sent its first email
// before the payment event arrived. The payment happened before any message: crediting the
// email inflates the treatment's message attribution and its time to recover.
func TestPaymentBeforeTheRunStartedIsNotCreditedToALaterMessage(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_early', 'cus', 5000, 'USD', 'open', $1, $1)`, since.Add(-h))
	if err := st.StartRun(ctx, "early", "inv_early", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.event("early", "payment.recovered", "http", -h/2) // occurred before the run started
	f.sent("early", 1, "email", h/4)                    // the run's first email, after the payment
	if err := st.FinishRun(ctx, "early", "inv_early", "cus", "recovered", "paid another way", 1, since.Add(h)); err != nil {
		t.Fatal(err)
	}
	if attr, step, ch := recordedAttribution(t, f, "early"); attr != experiment.AttributionBeforeMessage {
		t.Errorf("paid 30 min before the run's first email: attributed %s step %d %s; want before_message", attr, step, ch)
	}
}

// The customer clicked the email's payment link, updated the card, and billing's next retry
// charged it: the retry is how the money moved, the click is why. Crediting billing_retry
// (step 0, no channel) hides every click-driven card update from the variant and channel
// comparisons.
func TestBillingRetryAfterAClickIsCreditedToTheClick(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_cr', 'cus', 5000, 'USD', 'open', $1, $1)`, since)
	if err := st.StartRun(ctx, "cr", "inv_cr", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.sent("cr", 1, "email", h)
	f.clicked("cr", 1, "email", 2*h)
	f.event("cr", "payment.retry_succeeded", "http", 3*h)
	if err := st.FinishRun(ctx, "cr", "inv_cr", "cus", "recovered", "retry r2 succeeded", 1, since.Add(4*h)); err != nil {
		t.Fatal(err)
	}
	if attr, step, ch := recordedAttribution(t, f, "cr"); attr != experiment.AttributionAfterClick || step != 1 || ch != "email" {
		t.Errorf("retry succeeded 1 h after a click on step 1's email: attributed %q step %d %q; want after_click step 1 email", attr, step, ch)
	}
}

// A send's created_at is when it was reserved (sends.go ReserveSend, clock_timestamp at the
// claim), not when it went out: with the provider down, the email reserved at 1 h went out at
// 5 h, after the customer paid at 3 h. The message did not cause the payment.
func TestMessageReservedBeforeButSentAfterThePaymentIsNotCredited(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_out', 'cus', 5000, 'USD', 'open', $1, $1)`, since)
	if err := st.StartRun(ctx, "out", "inv_out", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.exec(`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, attempts, created_at, updated_at, claimed_at)
		VALUES ('out/1/email', 'out', 1, 'email', 'cus', 'inv_out', 'sent', 3, $1, $2, $2)`, since.Add(h), since.Add(5*h))
	f.event("out", "payment.recovered", "http", 3*h)
	if err := st.FinishRun(ctx, "out", "inv_out", "cus", "recovered", "paid another way", 1, since.Add(6*h)); err != nil {
		t.Fatal(err)
	}
	if attr, step, ch := recordedAttribution(t, f, "out"); attr != experiment.AttributionBeforeMessage {
		t.Errorf("email went out 2 h after the payment: attributed %s step %d %s; want before_message", attr, step, ch)
	}
}

// The customer clicked the link at 1 h 59 and paid at 2 h; billing's webhook ended the run at
// 2 h 01, the email provider's batched click webhook arrived at 2 h 03. FinishRun froze the
// attribution before the click was known, and the report reads the frozen row: the fastest
// click-to-pay path, the one after_click exists to measure, is reported as after_message.
func TestAClickReportedAfterTheRunEndedIsStillCredited(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_lc', 'cus', 5000, 'USD', 'open', $1, $1)`, since)
	if err := st.StartRun(ctx, "lc", "inv_lc", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.sent("lc", 1, "email", h)
	f.event("lc", "payment.recovered", "http", 2*h)
	if err := st.FinishRun(ctx, "lc", "inv_lc", "cus", "recovered", "paid another way", 1, since.Add(2*h+time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.clicked("lc", 1, "email", 2*h-time.Minute) // webhook received after FinishRun
	got, err := report.ExperimentRuns(ctx, st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Attribution != experiment.AttributionAfterClick {
		t.Errorf("clicked 1 min before paying, click webhook late: attribution %q; want after_click", got[0].Attribution)
	}
}

// The report reads the same: the payment made before the late run started is before_message
// and took no time (not a negative one).
func TestPaymentBeforeTheRunStartedTakesNoTimeToRecover(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	f.run("early", "recovered", "paid another way", 0, h)
	f.exec(`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		VALUES ('evt_early_failed', 'payment.failed', 'http', 'inv_early', 'cus', $1, '{}')`, since.Add(-h))
	f.event("early", "payment.recovered", "http", -h/2)
	f.sent("early", 1, "email", h/4)
	got, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Recovered || got[0].Attribution != experiment.AttributionBeforeMessage ||
		got[0].TimeToRecover != 0 || got[0].MessagesSent != 0 {
		t.Errorf("paid 30 min before the late run started: %+v; want recovered before_message, 0 time, 0 messages", got)
	}
}

// The invoice's second episode (it failed again after the first run ended recovered) is
// credited to its own payment, not to the first episode's.
func TestASecondEpisodeIsCreditedToItsOwnPayment(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	f.run("ep1", "recovered", "paid another way", 0, d)
	f.event("ep1", "payment.recovered", "http", d)
	f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, reason, steps, started_at, ended_at)
		VALUES ('ep2', 'inv_ep1', 'cus', 'recovered', 'paid another way', 1, $1, $2)`, since.Add(40*d), since.Add(45*d))
	f.sent("ep2", 1, "email", 41*d)
	f.exec(`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		VALUES ('evt_ep2_paid', 'payment.recovered', 'http', 'inv_ep1', 'cus', $1, '{}')`, since.Add(44*d))
	got, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("two episodes 40 days apart: %d runs, want 2", len(got))
	}
	if r := got[1]; r.WorkflowID != "ep2" || r.Attribution != experiment.AttributionAfterMessage || r.TimeToRecover != 4*d {
		t.Errorf("second episode: %+v; want after_message, paid 4 days after its start", r)
	}
}
