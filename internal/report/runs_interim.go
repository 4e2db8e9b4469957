package report

// INTERIM: this file stands in for the loader of branch `holdout` (internal/report/runs.go),
// which reads the holdout arm and the recorded attribution. It derives what today's tables
// know — dunning_runs' outcome, the first decision's variant and decided_by, the invoice's
// amount, the offers — with Holdout "" and a coarse attribution (before_message when no
// message was sent before the run ended, else after_message at the last step sent).
// Delete it when runs.go lands.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

const interimRunsQuery = `
SELECT r.workflow_id, r.invoice_id, r.started_at,
       COALESCE(fd.variant, ''), COALESCE(fd.decided_by, ''), COALESCE(c.plan, ''),
       upper(COALESCE(i.currency, '')), COALESCE(i.amount_minor, 0),
       COALESCE(r.outcome, ''), r.ended_at,
       COALESCE(s.sent, 0), COALESCE(s.last_step, 0), COALESCE(s.last_channel, ''),
       COALESCE((SELECT COALESCE(i.amount_minor, 0) * max(o.value) / 100 FROM offers o
                  WHERE o.workflow_id = r.workflow_id AND o.kind = 'discount_percent'), 0)
  FROM dunning_runs r
  LEFT JOIN invoices i ON i.invoice_id = r.invoice_id
  LEFT JOIN customers c ON c.customer_id = r.customer_id
  LEFT JOIN LATERAL (SELECT d.variant, d.decided_by FROM decisions d
                      WHERE d.workflow_id = r.workflow_id ORDER BY d.step LIMIT 1) fd ON true
  LEFT JOIN LATERAL (SELECT count(*) AS sent, max(x.step) AS last_step,
                            (array_agg(x.channel ORDER BY x.step DESC))[1] AS last_channel
                       FROM sends x
                      WHERE x.workflow_id = r.workflow_id AND x.status IN ('sent', 'logged')
                        AND (r.ended_at IS NULL OR x.created_at <= r.ended_at)) s ON true
 WHERE r.started_at >= $1
 ORDER BY r.started_at, r.workflow_id`

// ExperimentRuns reads the runs started at or after since, each with its outcome within
// window after its start (0: whenever it ended). INTERIM: see the top of this file.
func ExperimentRuns(ctx context.Context, pool *pgxpool.Pool, since time.Time, window time.Duration) ([]experiment.Run, error) {
	rows, err := pool.Query(ctx, interimRunsQuery, since)
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (experiment.Run, error) {
		var (
			r       experiment.Run
			outcome string
			ended   *time.Time
			cost    int64
		)
		if err := row.Scan(&r.WorkflowID, &r.InvoiceID, &r.StartedAt, &r.Variant, &r.DecidedBy, &r.Segment,
			&r.Currency, &r.AmountDueMinor, &outcome, &ended, &r.MessagesSent, &r.AttributedStep,
			&r.AttributedChannel, &cost); err != nil {
			return r, err
		}
		inWindow := ended != nil && (window == 0 || !ended.After(r.StartedAt.Add(window)))
		switch {
		case inWindow && outcome == "recovered":
			r.Recovered, r.RecoveredAt, r.TimeToRecover = true, *ended, ended.Sub(r.StartedAt)
			r.IncentiveCostMinor, r.RecoveredAmountMinor = cost, r.AmountDueMinor-cost
			r.Attribution = experiment.AttributionAfterMessage
			if r.MessagesSent == 0 {
				r.Attribution = experiment.AttributionBeforeMessage
			}
		case inWindow && outcome != "":
			r.Lost = true
		}
		if r.Attribution != experiment.AttributionAfterMessage {
			r.AttributedStep, r.AttributedChannel = 0, ""
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	return out, nil
}
