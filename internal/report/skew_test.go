package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// Billing's clock runs 2 minutes ahead (within the 5-minute skew the log accepts unclamped),
// so the payment.failed that opened the run is dated after the run's start (workflow.Now).
// The run's own failure still opens its episode: an earlier charge of the invoice (since
// reversed) is not taken as the recovery, which came after the run's first email.
func TestAFailureDatedAheadOfTheRunsStartStillOpensItsEpisode(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	ctx := context.Background()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_skew', 'cus', 5000, 'USD', 'open', $1, $1)`, since)
	f.event("skew", "payment.succeeded", "http", -time.Hour) // the charge later reversed
	f.event("skew", "payment.failed", "http", 2*time.Minute) // billing's clock 2 min ahead
	if err := st.StartRun(ctx, "skew", "inv_skew", "cus", since); err != nil {
		t.Fatal(err)
	}
	f.sent("skew", 1, "email", time.Hour)
	f.exec(`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		VALUES ('evt_skew_paid', 'payment.recovered', 'http', 'inv_skew', 'cus', $1, '{}')`, since.Add(2*time.Hour))
	if err := st.FinishRun(ctx, "skew", "inv_skew", "cus", "recovered", "paid", 1, since.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if attr, step, ch := recordedAttribution(t, f, "skew"); attr != experiment.AttributionAfterMessage || step != 1 || ch != "email" {
		t.Errorf("paid 1 h after the run's email: attributed %q step %d %q; want after_message step 1 email", attr, step, ch)
	}
	var at time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT recovered_at FROM dunning_runs WHERE workflow_id = 'skew'`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(since.Add(2 * time.Hour)) {
		t.Errorf("recovered_at %s, want %s (the payment after the failure)", at.UTC(), since.Add(2*time.Hour))
	}
}
