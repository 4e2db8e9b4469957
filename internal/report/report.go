// Package report builds the recovery report from PostgreSQL: how dunning runs ended, by
// prompt variant, channel, tone and incentive. Which runs count and how they are
// attributed: docs/PACKAGES.md.
package report

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/model/money"
)

// Dimension is what the runs are broken down by.
type Dimension string

// The dimensions, in report order.
const (
	Variant   Dimension = "variant"
	Channel   Dimension = "channel"
	Tone      Dimension = "tone"
	Incentive Dimension = "incentive"
)

// Row is one line of the report: the runs under one value of one dimension, in one currency.
type Row struct {
	Dimension Dimension
	Value     string // as stored in the decisions ("" for decisions made before variants)
	Currency  string // the invoices' ISO 4217 code

	Runs      int // runs counted under Value (window closed, control arm out: BuildWindow)
	Recovered int // of which recovered
	// RecoveryRate is Recovered / Runs, a fraction in [0, 1].
	RecoveryRate float64
	// MedianHoursToRecovery is the median of the payment time - started_at over the
	// recovered runs, in hours (0 when none recovered; a payment made before the run started
	// counts 0).
	MedianHoursToRecovery float64
	// MessagesPerRecovery is the number of messages sent (sends with status "sent" or
	// "logged") in the recovered runs divided by the recovered runs (0 when none recovered).
	MessagesPerRecovery float64
	// IncentiveCostMinor is the discount given away by the recovered runs, in minor units of
	// Currency: for each recovered run with a discount_percent offer, the invoice's
	// amount_minor * value / 100 (integer division, rounding down) of its largest such offer —
	// a run settles one invoice once, so offers made at several steps are not added up.
	// Extension days cost 0.
	IncentiveCostMinor int64
}

const query = `
WITH run AS (
    SELECT r.workflow_id,
           r.outcome = 'recovered' AND COALESCE(a.o_recovered_at, r.ended_at) <= r.started_at + make_interval(secs => $3)
               AS recovered,
           (GREATEST(EXTRACT(EPOCH FROM COALESCE(a.o_recovered_at, r.ended_at) - r.started_at), 0) / 3600)::float8 AS hours,
           upper(COALESCE(i.currency, '')) AS currency,
           (SELECT count(*) FROM sends s
             WHERE s.workflow_id = r.workflow_id AND s.status IN ('sent', 'logged')) AS messages,
           COALESCE((SELECT COALESCE(i.amount_minor, 0) * max(o.value) / 100 FROM offers o
             WHERE o.workflow_id = r.workflow_id AND o.kind = 'discount_percent'), 0) AS cost
      FROM dunning_runs r
      LEFT JOIN invoices i ON i.invoice_id = r.invoice_id
      LEFT JOIN LATERAL recoup_run_attribution(r.workflow_id) a ON r.outcome = 'recovered'
     WHERE r.started_at >= $1 AND r.started_at + make_interval(secs => $3) <= $2
       AND r.holdout <> 'control'
),
dec AS (
    SELECT d.* FROM decisions d WHERE d.workflow_id IN (SELECT workflow_id FROM run)
),
attr AS (
    SELECT 'variant' AS dimension, f.variant AS value, f.workflow_id
      FROM (SELECT DISTINCT ON (workflow_id) workflow_id, variant FROM dec ORDER BY workflow_id, step) f
    UNION SELECT 'channel', channel, workflow_id FROM dec
    UNION SELECT 'tone', tone, workflow_id FROM dec
    UNION SELECT 'incentive', incentive_kind, workflow_id FROM dec
)
SELECT a.dimension, a.value, run.currency,
       count(*) AS runs,
       count(*) FILTER (WHERE run.recovered) AS recovered,
       COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY run.hours) FILTER (WHERE run.recovered), 0) AS median_hours,
       COALESCE(sum(run.messages) FILTER (WHERE run.recovered), 0)::bigint AS messages,
       COALESCE(sum(run.cost) FILTER (WHERE run.recovered), 0)::bigint AS cost
  FROM attr a JOIN run ON run.workflow_id = a.workflow_id
 GROUP BY a.dimension, a.value, run.currency
 ORDER BY array_position(ARRAY['variant', 'channel', 'tone', 'incentive'], a.dimension),
          a.value, run.currency`

// Build computes the report at the present time with DefaultWindow: BuildWindow(ctx, pool,
// time.Now(), since, DefaultWindow).
func Build(ctx context.Context, pool *pgxpool.Pool, since time.Time) ([]Row, error) {
	return BuildWindow(ctx, pool, time.Now(), since, DefaultWindow)
}

// BuildWindow computes the report over the runs started at or after since whose attribution
// window has closed by now (started at least window before now), as the experiments count
// them: a run counts whether it ended or not, and is recovered when the invoice was paid
// within window of its start (recoup_run_attribution's payment time; the run's end when no
// payment event is found). The holdout's control runs are left out: they are not Recoup's
// treatment. The rows come ordered by dimension (variant, channel, tone, incentive), value and
// currency; no such run gives no rows.
func BuildWindow(ctx context.Context, pool *pgxpool.Pool, now, since time.Time, window time.Duration) ([]Row, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	rows, err := pool.Query(ctx, query, since, now, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("recovery report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
		var (
			row      Row
			dim      string
			messages int64
		)
		if err := r.Scan(&dim, &row.Value, &row.Currency, &row.Runs, &row.Recovered,
			&row.MedianHoursToRecovery, &messages, &row.IncentiveCostMinor); err != nil {
			return Row{}, err
		}
		row.Dimension = Dimension(dim)
		if row.Runs > 0 {
			row.RecoveryRate = float64(row.Recovered) / float64(row.Runs)
		}
		if row.Recovered > 0 {
			row.MessagesPerRecovery = float64(messages) / float64(row.Recovered)
		}
		return row, nil
	})
	if err != nil {
		return nil, fmt.Errorf("recovery report: %w", err)
	}
	return out, nil
}

// WriteTable writes rows as an aligned text table (recovery rate as a percentage with one
// decimal, incentive cost in major units of its currency). An empty value or currency shows
// as "-". With no rows it writes a single "no runs whose window has closed" line;
// WriteTableSince names the since time in it.
func WriteTable(w io.Writer, rows []Row) error {
	return writeTable(w, rows, "no runs whose window has closed since the start of the report period")
}

// WriteTableSince is WriteTable whose "no runs whose window has closed since …" line names
// since.
func WriteTableSince(w io.Writer, rows []Row, since time.Time) error {
	return writeTable(w, rows, "no runs whose window has closed since "+since.UTC().Format(time.RFC3339))
}

func writeTable(w io.Writer, rows []Row, empty string) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DIMENSION\tVALUE\tCURRENCY\tRUNS\tRECOVERED\tRATE\tMEDIAN HOURS\tMSGS/RECOVERY\tINCENTIVE COST")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.1f%%\t%.1f\t%.2f\t%s\n",
			r.Dimension, dash(r.Value), dash(r.Currency), r.Runs, r.Recovered, r.RecoveryRate*100,
			r.MedianHoursToRecovery, r.MessagesPerRecovery, major(r.IncentiveCostMinor, r.Currency))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// major renders minor units as a plain decimal with the currency's exponent (1234 USD → "12.34").
func major(minor int64, currency string) string {
	exp := 2
	if currency != "" {
		exp = money.Exponent(currency)
	}
	if exp == 0 {
		return strconv.FormatInt(minor, 10)
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	p := int64(1)
	for range exp {
		p *= 10
	}
	return fmt.Sprintf("%s%d.%0*d", sign, minor/p, exp, minor%p)
}

// CSVHeader is the header row WriteCSV writes.
var CSVHeader = []string{"dimension", "value", "currency", "runs", "recovered", "recovery_rate",
	"median_hours_to_recovery", "messages_per_recovery", "incentive_cost_minor"}

// WriteCSV writes rows as CSV with a header row (CSVHeader). Floats are written with the
// fewest digits that parse back to the same float64 (recovery_rate as a fraction in [0, 1]),
// the incentive cost in minor units.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range rows {
		if err := cw.Write([]string{string(r.Dimension), r.Value, r.Currency,
			strconv.Itoa(r.Runs), strconv.Itoa(r.Recovered), f(r.RecoveryRate),
			f(r.MedianHoursToRecovery), f(r.MessagesPerRecovery),
			strconv.FormatInt(r.IncentiveCostMinor, 10)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
