package report

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// Besides the attribution function, the experiments' query looks up every run's payment
// (payment_attempts by invoice_id) and discount (offers by workflow_id): by index
// (migration 00016), not by a full scan of each table per run.
func TestExperimentRunsLooksPaymentsAndOffersUpByIndex(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		 SELECT 'inv_'||g, 'cus', 1000, 'USD', 'open', $1, $1 FROM generate_series(1, 5000) g`,
		`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, steps, started_at, ended_at)
		 SELECT 'run_'||g, 'inv_'||g, 'cus', 'exhausted', 1, $1::timestamptz + g * interval '1 minute', $1::timestamptz + interval '20 days'
		   FROM generate_series(1, 5000) g`,
		`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		 SELECT 'evt_'||g, 'payment.succeeded', 'http', 'inv_'||g, 'cus', $1::timestamptz + interval '2 days', '{}' FROM generate_series(1, 5000) g`,
		`INSERT INTO payment_attempts (event_id, invoice_id, customer_id, outcome, amount_minor, currency, occurred_at)
		 SELECT 'evt_'||g, 'inv_'||g, 'cus', 'succeeded', 1000, 'USD', $1::timestamptz + interval '2 days' FROM generate_series(1, 5000) g`,
		`INSERT INTO offers (offer_key, workflow_id, invoice_id, customer_id, kind, value, expires_at, created_at)
		 SELECT 'off_'||g, 'run_'||g, 'inv_'||g, 'cus', 'discount_percent', 10, $1::timestamptz + interval '30 days', $1
		   FROM generate_series(1, 5000) g`,
	} {
		if _, err := st.Pool().Exec(ctx, q, start); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	plan := explainRunsQuery(t, st, start)
	scan := regexp.MustCompile(`Seq Scan on (payment_attempts|offers)\b`)
	for _, l := range plan {
		if m := scan.FindStringSubmatch(l); m != nil {
			t.Errorf("every run scans all of %s\n%s", m[1], strings.Join(plan, "\n"))
			break
		}
	}
}

// The messages of each run are counted from its own sends, read by index, not by scanning a
// materialized list of every message of every run once per run (100k runs with 200k
// messages would be 4·10^10 rows read, whatever the indexes): no CTE is scanned with a filter
// on the run, and sends is not scanned in full per run.
func TestExperimentRunsDoesNotRescanEveryMessageForEachRun(t *testing.T) {
	st := fakes.MustStore(t)
	plan := explainRunsQuery(t, st, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	for i, l := range plan {
		if strings.Contains(l, "CTE Scan on") && i+1 < len(plan) && strings.Contains(plan[i+1], "= run.workflow_id") {
			t.Errorf("each run rescans every row of a CTE:\n%s\n%s", l, plan[i+1])
		}
		if strings.Contains(l, "Seq Scan on sends") {
			t.Errorf("each run scans all of sends:\n%s", strings.Join(plan, "\n"))
		}
	}
}

func explainRunsQuery(t *testing.T, st interface{ Pool() *pgxpool.Pool }, start time.Time) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Pool().Query(ctx, "EXPLAIN "+runsQuery, start)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
