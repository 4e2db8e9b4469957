package report_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
)

// The report reads every recovered run through recoup_run_attribution. Were its episode
// lookup (the invoice's previous runs) and message lookup (the run's sends) not indexed, each
// recovered run would scan all of dunning_runs and sends, and the report would be quadratic
// in the number of runs (BENCHMARKS.md, "Recovery report on 100k runs"). This
// asserts the plan's shape on a few thousand seeded runs, not a time.
func TestAttributionLooksRunsUpByIndexNotByScanningEveryRun(t *testing.T) {
	st := fakes.MustStore(t)
	f := fixture{t, st.Pool()}
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		SELECT 'inv_'||g, 'cus', 1000, 'USD', 'open', $1, $1 FROM generate_series(1, 5000) g`, since)
	f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, steps, started_at, ended_at)
		SELECT 'run_'||g, 'inv_'||g, 'cus', 'recovered', 1, $1::timestamptz + g * interval '1 minute', $1::timestamptz + g * interval '1 minute' + interval '2 days'
		  FROM generate_series(1, 5000) g`, since)
	f.exec(`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, created_at, updated_at)
		SELECT 'run_'||g||'/1', 'run_'||g, 1, 'email', 'cus', 'inv_'||g, 'sent', $1::timestamptz + g * interval '1 minute' + interval '1 hour',
		       $1::timestamptz + g * interval '1 minute' + interval '1 hour' FROM generate_series(1, 5000) g`, since)
	f.exec(`ANALYZE dunning_runs; ANALYZE sends`)
	var plan []string
	rows, err := st.Pool().Query(context.Background(),
		`EXPLAIN SELECT * FROM dunning_runs r, LATERAL recoup_run_attribution(r.workflow_id) a WHERE r.workflow_id = 'run_42'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	scan := regexp.MustCompile(`Seq Scan on (dunning_runs|sends)\b`)
	for _, l := range plan {
		if m := scan.FindStringSubmatch(l); m != nil {
			t.Errorf("attributing one run scans all of %s (no index): the report is quadratic in runs\n%s", m[1], strings.Join(plan, "\n"))
			break
		}
	}
}
