package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// runsQuery reads one row per run started at or after $1, in order of start. Attribution:
// derived now by recoup_run_attribution (migration 00016) for every recovered run, so that a
// click webhook or billing event relayed after the run ended still counts; the attribution
// FinishRun recorded in dunning_runs is a snapshot of what was known at the run's end and is
// not read here. recovered_at and lost_at are when it happened, whatever the window: the
// window is applied by ExperimentRuns, per invoice. A run Temporal closed outside the
// workflow (run_outcomes: terminated, timed out, …) has no outcome in dunning_runs; it is lost
// at its close, unless a reset closed it (the workflow goes on in the new run, which is the
// same dunning run). A message counts from when it went out (the send's updated_at when it was
// marked sent or logged, or the first provider event on it if earlier), not from when it was
// reserved.
const runsQuery = `
WITH run AS (
    SELECT r.workflow_id, r.invoice_id, r.started_at, r.holdout, r.holdout_treatment,
           upper(COALESCE(i.currency, '')) AS currency,
           COALESCE(i.amount_minor, 0) AS amount,
           COALESCE(c.plan, '') AS segment,
           COALESCE(fd.variant, '') AS variant,
           COALESCE(md.decided_by, '') AS decided_by,
           CASE WHEN r.outcome = 'recovered' THEN COALESCE(a.o_recovered_at, r.ended_at) END AS recovered_at,
           COALESCE(a.o_attribution, '') AS attribution,
           COALESCE(a.o_step, 0) AS step,
           COALESCE(a.o_channel, '') AS channel,
           CASE WHEN r.outcome IN ('exhausted', 'canceled', 'failed') THEN r.ended_at
                WHEN r.outcome IS NULL THEN (
                    SELECT min(o.closed_at) FROM run_outcomes o
                     WHERE o.invoice_id = r.invoice_id AND o.closed_at >= r.started_at
                       AND o.outcome <> 'completed'
                       -- a reset terminates the run it replaces as the server's resetter;
                       -- the workflow goes on in the new run (internal/closedruns)
                       AND o.closed_by <> 'history-resetter')
           END AS lost_at,
           r.ended_at
      FROM dunning_runs r
      LEFT JOIN invoices i ON i.invoice_id = r.invoice_id
      LEFT JOIN customers c ON c.customer_id = r.customer_id
      LEFT JOIN LATERAL (
          SELECT d.variant, d.decided_by, d.channel FROM decisions d
           WHERE d.workflow_id = r.workflow_id ORDER BY d.step LIMIT 1) fd ON true
      -- The first decision at which the model was asked and answered (experiment.Run.DecidedBy):
      -- 'llm' when its answer was used, 'rules' when it answered and was refused.
      LEFT JOIN LATERAL (
          SELECT d.decided_by FROM decisions d
           WHERE d.workflow_id = r.workflow_id
             AND (d.decided_by = 'llm' OR (d.decided_by = 'rules' AND d.inputs IS NOT NULL
                  AND (COALESCE(d.inputs->>'model_answer', '') <> '' OR COALESCE(d.inputs->>'model_refusal', '') <> '')))
           ORDER BY d.step LIMIT 1) md ON true
      LEFT JOIN LATERAL recoup_run_attribution(r.workflow_id) a ON r.outcome = 'recovered'
     WHERE r.started_at >= $1
)
SELECT run.workflow_id, run.invoice_id, run.started_at, run.holdout, run.holdout_treatment, run.variant,
       run.decided_by, run.segment, run.currency, run.amount,
       run.recovered_at, run.lost_at, run.attribution, run.step, run.channel,
       COALESCE((SELECT max(p.amount_minor) FROM payment_attempts p
                  WHERE p.invoice_id = run.invoice_id AND p.outcome = 'succeeded'
                    AND p.occurred_at >= LEAST(run.started_at, run.recovered_at)
                    AND p.occurred_at <= COALESCE(run.ended_at, 'infinity')), 0) AS paid,
       COALESCE((SELECT run.amount * max(o.value) / 100 FROM offers o
                  WHERE o.workflow_id = run.workflow_id AND o.kind = 'discount_percent'), 0) AS cost,
       m.messages, m.messages_before
  FROM run
  -- The run's own messages, read by index (sends_workflow, provider_events_key): nothing is
  -- scanned once per run.
  CROSS JOIN LATERAL (
      SELECT count(*) AS messages,
             count(*) FILTER (WHERE LEAST(s.updated_at, (SELECT min(pe.occurred_at) FROM provider_events pe
                                                          WHERE pe.idempotency_key = s.idempotency_key))
                                    <= run.recovered_at) AS messages_before
        FROM sends s
       WHERE s.workflow_id = run.workflow_id AND s.status IN ('sent', 'logged')) m
 ORDER BY run.started_at, run.workflow_id`

// Holdout arm names as ExperimentRuns reports them (experiment.Run.Holdout).
const (
	HoldoutTreatment = "treatment"
	// HoldoutControl prefixes the control arm's name: "control:rules_plain" or
	// "control:no_messages" (the control treatment the run got), "control" alone for a
	// control run recorded without one.
	HoldoutControl = "control"
)

// holdoutArm names a run's holdout arm from dunning_runs' holdout and holdout_treatment.
func holdoutArm(arm, treatment string) string {
	if arm == HoldoutControl && treatment != "" {
		return HoldoutControl + ":" + treatment
	}
	return arm
}

// ExperimentRuns reads the dunning runs started at or after since as the experiment analysis
// sees them, in order of start. window is the attribution window (DefaultWindow when zero or
// negative). An invoice counts once per window: a run of an invoice that starts within the
// window of an earlier counted run of it (a new episode: the payment was reversed, or the
// invoice failed again) is not a run of its own, and the earlier run takes its final state in
// the window from the last such run. A run is Recovered when, at the window's end, the
// invoice's last episode started in it was paid within it, Lost when that episode ended
// exhausted, canceled (a canceled subscription or support's cancel), failed, or was closed
// outside the workflow within it (not by a Temporal reset: the run goes on), and neither
// otherwise (still open at the window's end, or recovered later). Attribution, time to recover, recovered amount, incentive cost and
// messages before the recovery are set for recovered runs only (messages in total
// otherwise); incentive cost and messages add up over the folded episodes. docs/PACKAGES.md (internal/report) says how each field is derived.
func ExperimentRuns(ctx context.Context, pool *pgxpool.Pool, since time.Time, window time.Duration) ([]experiment.Run, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	rows, err := pool.Query(ctx, runsQuery, since)
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	type episode struct {
		run                          experiment.Run
		recoveredAt, lostAt          *time.Time
		paid, cost, msgs, msgsBefore int64
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (episode, error) {
		var (
			e         episode
			treatment string
		)
		if err := r.Scan(&e.run.WorkflowID, &e.run.InvoiceID, &e.run.StartedAt, &e.run.Holdout, &treatment,
			&e.run.Variant, &e.run.DecidedBy, &e.run.Segment, &e.run.Currency, &e.run.AmountDueMinor,
			&e.recoveredAt, &e.lostAt, &e.run.Attribution, &e.run.AttributedStep, &e.run.AttributedChannel,
			&e.paid, &e.cost, &e.msgs, &e.msgsBefore); err != nil {
			return episode{}, err
		}
		e.run.StartedAt = e.run.StartedAt.UTC()
		e.run.Holdout = holdoutArm(e.run.Holdout, treatment)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("experiment runs: %w", err)
	}
	// Fold each invoice's episodes into the earliest one whose window they start in.
	var out []experiment.Run
	open := map[string]int{} // invoice → index in groups of its counted run
	var groups [][]episode
	for _, e := range eps {
		if i, ok := open[e.run.InvoiceID]; ok && e.run.StartedAt.Before(groups[i][0].run.StartedAt.Add(window)) {
			groups[i] = append(groups[i], e)
			continue
		}
		open[e.run.InvoiceID] = len(groups)
		groups = append(groups, []episode{e})
	}
	for _, g := range groups {
		run := g[0].run
		end := run.StartedAt.Add(window)
		last := g[len(g)-1]
		var cost, msgs int64
		for _, e := range g[:len(g)-1] {
			cost += e.cost
			msgs += e.msgs
		}
		run.Attribution, run.AttributedStep, run.AttributedChannel = experiment.AttributionNone, 0, ""
		run.Lost = last.lostAt != nil && !last.lostAt.After(end)
		run.Recovered = last.recoveredAt != nil && !last.recoveredAt.After(end)
		run.IncentiveCostMinor = cost + last.cost
		run.MessagesSent = int(msgs + last.msgs)
		if !run.Recovered {
			run.IncentiveCostMinor = 0
			out = append(out, run)
			continue
		}
		run.RecoveredAt = last.recoveredAt.UTC()
		// A payment made before the run started (billing's failure was relayed late) took no time.
		run.TimeToRecover = max(run.RecoveredAt.Sub(run.StartedAt), 0)
		run.Attribution, run.AttributedStep, run.AttributedChannel =
			last.run.Attribution, last.run.AttributedStep, last.run.AttributedChannel
		run.RecoveredAmountMinor = last.paid
		if last.paid == 0 { // billing reported no amount: the invoice, less the discount given
			run.RecoveredAmountMinor = run.AmountDueMinor - last.cost
		}
		run.MessagesSent = int(msgs + last.msgsBefore)
		out = append(out, run)
	}
	return out, nil
}
