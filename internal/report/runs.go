package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// runsQuery reads one row per run started at or after $1, with its outcome judged within the
// window $2 (seconds). Attribution: as recorded when the run ended recovered (dunning_runs,
// migration 00016), or derived now by recoup_run_attribution for a recovered run that has
// none recorded. A run Temporal closed outside the workflow (run_outcomes: terminated, timed
// out, …) has no outcome in dunning_runs; it is lost at its close.
const runsQuery = `
WITH run AS (
    SELECT r.workflow_id, r.invoice_id, r.started_at, r.holdout,
           r.started_at + make_interval(secs => $2) AS window_end,
           upper(COALESCE(i.currency, '')) AS currency,
           COALESCE(i.amount_minor, 0) AS amount,
           COALESCE(c.plan, '') AS segment,
           COALESCE(fd.variant, '') AS variant, COALESCE(fd.decided_by, '') AS decided_by,
           CASE WHEN r.outcome <> 'recovered' THEN NULL
                WHEN r.attribution <> '' THEN r.attribution ELSE a.o_attribution END AS attribution,
           CASE WHEN r.outcome <> 'recovered' THEN NULL
                WHEN r.attribution <> '' THEN COALESCE(r.recovered_at, r.ended_at)
                ELSE COALESCE(a.o_recovered_at, r.ended_at) END AS recovered_at,
           CASE WHEN r.attribution <> '' THEN r.attributed_step ELSE COALESCE(a.o_step, 0) END AS step,
           CASE WHEN r.attribution <> '' THEN r.attributed_channel ELSE COALESCE(a.o_channel, '') END AS channel,
           CASE WHEN r.outcome IN ('exhausted', 'canceled', 'failed') THEN r.ended_at
                WHEN r.outcome IS NULL THEN (
                    SELECT min(o.closed_at) FROM run_outcomes o
                     WHERE o.invoice_id = r.invoice_id AND o.closed_at >= r.started_at
                       AND o.outcome <> 'completed')
           END AS lost_at,
           r.ended_at
      FROM dunning_runs r
      LEFT JOIN invoices i ON i.invoice_id = r.invoice_id
      LEFT JOIN customers c ON c.customer_id = r.customer_id
      LEFT JOIN LATERAL (
          SELECT d.variant, d.decided_by FROM decisions d
           WHERE d.workflow_id = r.workflow_id ORDER BY d.step LIMIT 1) fd ON true
      LEFT JOIN LATERAL recoup_run_attribution(r.workflow_id) a
             ON r.outcome = 'recovered' AND r.attribution = ''
     WHERE r.started_at >= $1
)
SELECT run.workflow_id, run.invoice_id, run.started_at, run.holdout, run.variant, run.decided_by,
       run.segment, run.currency, run.amount,
       run.recovered_at IS NOT NULL AND run.recovered_at <= run.window_end AS recovered,
       run.lost_at IS NOT NULL AND run.lost_at <= run.window_end AS lost,
       run.recovered_at, COALESCE(run.attribution, ''), run.step, run.channel,
       COALESCE((SELECT max(p.amount_minor) FROM payment_attempts p
                  WHERE p.invoice_id = run.invoice_id AND p.outcome = 'succeeded'
                    AND p.occurred_at >= run.started_at
                    AND p.occurred_at <= COALESCE(run.ended_at, 'infinity')), 0) AS paid,
       COALESCE((SELECT run.amount * max(o.value) / 100 FROM offers o
                  WHERE o.workflow_id = run.workflow_id AND o.kind = 'discount_percent'), 0) AS cost,
       (SELECT count(*) FROM sends s
         WHERE s.workflow_id = run.workflow_id AND s.status IN ('sent', 'logged')) AS messages,
       (SELECT count(*) FROM sends s
         WHERE s.workflow_id = run.workflow_id AND s.status IN ('sent', 'logged')
           AND s.created_at <= run.recovered_at) AS messages_before
  FROM run
 ORDER BY run.started_at, run.workflow_id`

// ExperimentRuns reads every dunning run started at or after since as the experiment
// analysis sees it, in order of start. window is the attribution window (DefaultWindow when
// zero or negative): a run is Recovered when the invoice was paid at most window after the
// run started, Lost when it ended exhausted, canceled (a canceled subscription or support's
// cancel), failed, or was closed outside the workflow within it, and neither otherwise
// (still open at the window's end, or recovered later). Attribution, time to recover,
// recovered amount, incentive cost and messages before the recovery are set for recovered
// runs only. docs/PACKAGES.md (internal/report) says how each field is derived.
func ExperimentRuns(ctx context.Context, pool *pgxpool.Pool, since time.Time, window time.Duration) ([]experiment.Run, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	rows, err := pool.Query(ctx, runsQuery, since, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (experiment.Run, error) {
		var (
			run                          experiment.Run
			recoveredAt                  *time.Time
			paid, cost, msgs, msgsBefore int64
		)
		if err := r.Scan(&run.WorkflowID, &run.InvoiceID, &run.StartedAt, &run.Holdout, &run.Variant,
			&run.DecidedBy, &run.Segment, &run.Currency, &run.AmountDueMinor, &run.Recovered, &run.Lost,
			&recoveredAt, &run.Attribution, &run.AttributedStep, &run.AttributedChannel,
			&paid, &cost, &msgs, &msgsBefore); err != nil {
			return experiment.Run{}, err
		}
		run.StartedAt = run.StartedAt.UTC()
		run.MessagesSent = int(msgs)
		if !run.Recovered {
			run.Attribution, run.AttributedStep, run.AttributedChannel = experiment.AttributionNone, 0, ""
			return run, nil
		}
		run.RecoveredAt = recoveredAt.UTC()
		run.TimeToRecover = run.RecoveredAt.Sub(run.StartedAt)
		run.IncentiveCostMinor = cost
		run.RecoveredAmountMinor = paid
		if paid == 0 { // billing reported no amount: the invoice, less the discount given
			run.RecoveredAmountMinor = run.AmountDueMinor - cost
		}
		run.MessagesSent = int(msgsBefore)
		return run, nil
	})
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	return out, nil
}
