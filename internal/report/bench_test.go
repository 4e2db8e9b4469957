package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
)

// BenchmarkRecoveryReport100k times the page's two queries (BuildWindow, ExperimentRuns) on
// 100,000 runs over 23 days (60,000 recovered, 40,000 exhausted), each with a payment.failed
// event, two decisions and two sent messages (200,000 sends), one provider event per run on
// its first message (100,000, one in five a click), a payment event and payment attempt per
// recovered run, and a discount offer on one run in four. BENCHMARKS.md records the figures:
//
//	flock /tmp/recoup-bench.lock nice go test -run '^$' -bench RecoveryReport100k -benchtime 3x ./internal/report
func BenchmarkRecoveryReport100k(b *testing.B) {
	st := fakes.MustStore(b)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const at = `($1::timestamptz + g * interval '20 seconds')`
	for _, q := range []string{
		`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		 SELECT 'inv_'||g, 'cus_'||(g % 5000), 4900, 'USD', 'open', ` + at + `, ` + at + ` FROM generate_series(1, 100000) g`,
		`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, steps, started_at, ended_at)
		 SELECT 'run_'||g, 'inv_'||g, 'cus_'||(g % 5000), CASE WHEN g % 10 < 6 THEN 'recovered' ELSE 'exhausted' END, 2,
		        ` + at + `, ` + at + ` + CASE WHEN g % 10 < 6 THEN interval '2 days' ELSE interval '14 days' END
		   FROM generate_series(1, 100000) g`,
		`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		 SELECT 'evf_'||g, 'payment.failed', 'http', 'inv_'||g, 'cus_'||(g % 5000), ` + at + ` - interval '1 hour', '{}'
		   FROM generate_series(1, 100000) g`,
		`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		 SELECT 'evs_'||g, CASE WHEN g % 3 = 0 THEN 'payment.retry_succeeded' ELSE 'payment.succeeded' END, 'http',
		        'inv_'||g, 'cus_'||(g % 5000), ` + at + ` + interval '2 days', '{}'
		   FROM generate_series(1, 100000) g WHERE g % 10 < 6`,
		`INSERT INTO payment_attempts (event_id, invoice_id, customer_id, outcome, amount_minor, currency, occurred_at)
		 SELECT 'evs_'||g, 'inv_'||g, 'cus_'||(g % 5000), 'succeeded', 4900, 'USD', ` + at + ` + interval '2 days'
		   FROM generate_series(1, 100000) g WHERE g % 10 < 6`,
		`INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind, message, rationale, decided_by, prompt_version, created_at)
		 SELECT 'run_'||g, s, 'cus_'||(g % 5000), 'inv_'||g, CASE WHEN s = 1 THEN 'email' ELSE 'sms' END, 'friendly',
		        CASE WHEN g % 4 = 0 THEN 'discount_percent' ELSE 'none' END, 'm', 'r',
		        CASE WHEN g % 2 = 0 THEN 'llm' ELSE 'rules' END, 'v1', ` + at + ` + s * interval '1 hour'
		   FROM generate_series(1, 100000) g, generate_series(1, 2) s`,
		`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, created_at, updated_at)
		 SELECT 'run_'||g||'/'||s, 'run_'||g, s, CASE WHEN s = 1 THEN 'email' ELSE 'sms' END, 'cus_'||(g % 5000), 'inv_'||g, 'sent',
		        ` + at + ` + s * interval '1 hour', ` + at + ` + s * interval '1 hour'
		   FROM generate_series(1, 100000) g, generate_series(1, 2) s`,
		`INSERT INTO provider_events (provider, provider_event_id, idempotency_key, kind, occurred_at, body)
		 SELECT 'sendgrid', 'pe_'||g, 'run_'||g||'/1', CASE WHEN g % 5 = 0 THEN 'clicked' ELSE 'delivered' END,
		        ` + at + ` + interval '90 minutes', '{}'
		   FROM generate_series(1, 100000) g`,
		`INSERT INTO offers (offer_key, workflow_id, invoice_id, customer_id, kind, value, expires_at, created_at)
		 SELECT 'off_'||g, 'run_'||g, 'inv_'||g, 'cus_'||(g % 5000), 'discount_percent', 10, ` + at + ` + interval '30 days', ` + at + `
		   FROM generate_series(1, 100000) g WHERE g % 4 = 0`,
	} {
		if _, err := st.Pool().Exec(ctx, q, start); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	now := start.AddDate(0, 0, 60)
	b.Run("BuildWindow", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rows, err := report.BuildWindow(ctx, st.Pool(), now, start, report.DefaultWindow)
			if err != nil || len(rows) == 0 {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}
	})
	b.Run("ExperimentRuns", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			runs, err := report.ExperimentRuns(ctx, st.Pool(), start, report.DefaultWindow)
			if err != nil || len(runs) != 100000 {
				b.Fatalf("%d runs, %v", len(runs), err)
			}
		}
	})
}
