-- +goose Up
-- The holdout arm of each run (policy.yaml's holdout section, decided by invoice when the run
-- is planned): 'control' (the control treatment, holdout_treatment: rules_plain or
-- no_messages), 'treatment' (Recoup's full treatment), or '' (the holdout was off, or the run
-- started before it existed). The first recorded arm stays.
ALTER TABLE dunning_runs ADD COLUMN holdout text NOT NULL DEFAULT ''
    CHECK (holdout IN ('', 'control', 'treatment'));
ALTER TABLE dunning_runs ADD COLUMN holdout_treatment text NOT NULL DEFAULT ''
    CHECK (holdout_treatment IN ('', 'rules_plain', 'no_messages'));

-- How a recovered run was recovered, recorded when the run ends recovered (Store.FinishRun)
-- and backfilled below for runs recorded before: recovered_at is when the payment occurred
-- (the settling event's occurred_at; the run's end when no event is found), attribution one
-- of before_message, billing_retry, after_message, after_click, support (internal/report/
-- experiment), and the step and channel of the message it is credited to.
ALTER TABLE dunning_runs ADD COLUMN recovered_at timestamptz;
ALTER TABLE dunning_runs ADD COLUMN attribution text NOT NULL DEFAULT ''
    CHECK (attribution IN ('', 'before_message', 'billing_retry', 'after_message', 'after_click', 'support'));
ALTER TABLE dunning_runs ADD COLUMN attributed_step int NOT NULL DEFAULT 0;
ALTER TABLE dunning_runs ADD COLUMN attributed_channel text NOT NULL DEFAULT '';

-- recoup_run_attribution derives a recovered run's attribution from what PostgreSQL holds:
--   the payment: the earliest payment.recovered / payment.retry_succeeded / payment.succeeded
--     of the invoice that occurred between the run's start and its end (else the run's end);
--   support: that event was recorded by hand (`starter event`, source 'cli'), or the last
--     message before the payment was a held message support edited (decided_by 'support');
--   billing_retry: it was billing's retry (payment.retry_succeeded, or the run's reason
--     "retry … succeeded" when no event is found);
--   before_message: no message of the run was sent (status sent or logged) before it;
--   after_click: a provider 'clicked' event on one of the run's messages occurred before it
--     (credited to the message of the last such click);
--   after_message: otherwise, credited to the last message sent before the payment.
-- It returns no row for a run that is not recovered.
-- +goose StatementBegin
CREATE FUNCTION recoup_run_attribution(p_run_key text)
RETURNS TABLE (o_attribution text, o_recovered_at timestamptz, o_step int, o_channel text)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT * FROM dunning_runs WHERE workflow_id = p_run_key AND outcome = 'recovered'
    ),
    settle AS (
        SELECT e.type, e.source, e.occurred_at
          FROM events e, r
         WHERE e.invoice_id = r.invoice_id
           AND e.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded')
           AND e.occurred_at >= r.started_at
           AND e.occurred_at <= COALESCE(r.ended_at, 'infinity')
         ORDER BY e.occurred_at, e.received_at
         LIMIT 1
    ),
    paid AS (
        SELECT COALESCE((SELECT occurred_at FROM settle), r.ended_at) AS at,
               (SELECT type FROM settle) AS type,
               (SELECT source FROM settle) AS source,
               r.reason
          FROM r
    )
    SELECT CASE
               WHEN p.source = 'cli' THEN 'support'
               WHEN p.type = 'payment.retry_succeeded'
                 OR (p.type IS NULL AND p.reason LIKE 'retry % succeeded') THEN 'billing_retry'
               WHEN m.step IS NULL THEN 'before_message'
               WHEN c.step IS NOT NULL THEN 'after_click'
               WHEN m.decided_by = 'support' THEN 'support'
               ELSE 'after_message'
           END,
           p.at,
           CASE WHEN p.source = 'cli' OR p.type = 'payment.retry_succeeded'
                  OR (p.type IS NULL AND p.reason LIKE 'retry % succeeded') THEN 0
                ELSE COALESCE(c.step, m.step, 0) END,
           CASE WHEN p.source = 'cli' OR p.type = 'payment.retry_succeeded'
                  OR (p.type IS NULL AND p.reason LIKE 'retry % succeeded') THEN ''
                ELSE COALESCE(c.channel, m.channel, '') END
      FROM paid p
      LEFT JOIN LATERAL (
          SELECT s.step, s.channel, d.decided_by
            FROM sends s
            LEFT JOIN decisions d ON d.workflow_id = s.workflow_id AND d.step = s.step
           WHERE s.workflow_id = p_run_key AND s.status IN ('sent', 'logged') AND s.created_at <= p.at
           ORDER BY s.created_at DESC, s.step DESC
           LIMIT 1) m ON true
      LEFT JOIN LATERAL (
          SELECT s.step, s.channel
            FROM provider_events pe
            JOIN sends s ON s.idempotency_key = pe.idempotency_key
           WHERE s.workflow_id = p_run_key AND pe.kind = 'clicked' AND pe.occurred_at <= p.at
           ORDER BY pe.occurred_at DESC
           LIMIT 1) c ON m.step IS NOT NULL
$$;
-- +goose StatementEnd

UPDATE dunning_runs d
   SET (attribution, recovered_at, attributed_step, attributed_channel) =
       (SELECT * FROM recoup_run_attribution(d.workflow_id))
 WHERE d.outcome = 'recovered' AND d.attribution = '';

-- +goose Down
DROP FUNCTION recoup_run_attribution(text);
ALTER TABLE dunning_runs DROP COLUMN attributed_channel;
ALTER TABLE dunning_runs DROP COLUMN attributed_step;
ALTER TABLE dunning_runs DROP COLUMN attribution;
ALTER TABLE dunning_runs DROP COLUMN recovered_at;
ALTER TABLE dunning_runs DROP COLUMN holdout_treatment;
ALTER TABLE dunning_runs DROP COLUMN holdout;
