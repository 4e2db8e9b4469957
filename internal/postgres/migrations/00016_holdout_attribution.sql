-- +goose Up
-- The holdout arm of each run (policy.yaml's holdout section, decided by invoice when the run
-- is planned): 'control' (the control treatment, holdout_treatment: rules_plain or
-- no_messages), 'treatment' (Recoup's full treatment), or '' (the holdout was off, or the run
-- started before it existed). The first recorded arm stays.
ALTER TABLE dunning_runs ADD COLUMN holdout text NOT NULL DEFAULT ''
    CHECK (holdout IN ('', 'control', 'treatment'));
ALTER TABLE dunning_runs ADD COLUMN holdout_treatment text NOT NULL DEFAULT ''
    CHECK (holdout_treatment IN ('', 'rules_plain', 'no_messages'));

-- How a recovered run was recovered: derived by recoup_run_attribution below. Store.FinishRun
-- records it when the run ends recovered, as a snapshot of what was known then (backfilled
-- below for runs recorded before); the report derives it again when it reads the runs, so a
-- provider's click webhook or a billing event relayed after the run ended still counts.
-- recovered_at is when the payment occurred, attribution one of before_message,
-- billing_retry, after_message, after_click, support (internal/report/experiment), and the
-- step and channel of the message it is credited to.
ALTER TABLE dunning_runs ADD COLUMN recovered_at timestamptz;
ALTER TABLE dunning_runs ADD COLUMN attribution text NOT NULL DEFAULT ''
    CHECK (attribution IN ('', 'before_message', 'billing_retry', 'after_message', 'after_click', 'support'));
ALTER TABLE dunning_runs ADD COLUMN attributed_step int NOT NULL DEFAULT 0;
ALTER TABLE dunning_runs ADD COLUMN attributed_channel text NOT NULL DEFAULT '';

-- The report (internal/report) reads every run of its period with the lookups below, one run
-- at a time; without these indexes each lookup scans its whole table, and the report is
-- quadratic in the number of runs (BENCHMARKS.md, "Recovery report on 100k runs"):
--   dunning_runs by start (the period) and by invoice (the invoice's previous run),
--   sends by run (a run's messages), offers by run (its discount), payment_attempts by
--   invoice (the amount paid).
CREATE INDEX dunning_runs_started ON dunning_runs (started_at);
CREATE INDEX dunning_runs_invoice ON dunning_runs (invoice_id, started_at);
CREATE INDEX sends_workflow ON sends (workflow_id, step);
CREATE INDEX offers_workflow ON offers (workflow_id);
CREATE INDEX payment_attempts_invoice ON payment_attempts (invoice_id, occurred_at);

-- recoup_run_attribution derives a recovered run's attribution from what PostgreSQL holds:
--   the episode: the invoice's payment failure the run answers, which may have occurred well
--     before the run started when billing's webhook was relayed late. It begins at the later
--     of the invoice's last payment.failed event that occurred by the run's start and the
--     end of the invoice's previous run (exclusive), and ends at the run's end;
--   the payment: the earliest payment.recovered / payment.retry_succeeded / payment.succeeded
--     of the invoice that occurred in the episode (else the run's end), even before the run
--     started;
--   a message's time: when it went out, not when it was reserved (sends.created_at): the
--     earlier of the send's updated_at (set when it was marked sent or logged) and the first
--     provider event (processed, delivered, clicked, …) on it;
--   support: the payment was recorded by hand (`starter event`, source 'cli');
--   after_click: a provider 'clicked' event on one of the run's sent messages occurred before
--     the payment, whether the customer then paid or billing's next retry charged the card
--     the customer updated (credited to the message of the last such click);
--   billing_retry: billing's retry succeeded with no click before it (payment.retry_succeeded,
--     or the run's reason "retry … succeeded" when no event is found);
--   before_message: no message of the run went out before the payment;
--   support: the last message before the payment was a held message support edited
--     (decided_by 'support');
--   after_message: otherwise, credited to the last message that went out before the payment.
-- It returns no row for a run that is not recovered.
-- +goose StatementBegin
CREATE FUNCTION recoup_run_attribution(p_run_key text)
RETURNS TABLE (o_attribution text, o_recovered_at timestamptz, o_step int, o_channel text)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT d.*,
               (SELECT max(p.ended_at) FROM dunning_runs p
                 WHERE p.invoice_id = d.invoice_id AND p.workflow_id <> d.workflow_id
                   AND p.started_at < d.started_at) AS prev_end,
               (SELECT max(f.occurred_at) FROM events f
                 WHERE f.invoice_id = d.invoice_id AND f.type = 'payment.failed'
                   -- billing's clock may run ahead of Temporal's by up to the accepted skew
                   -- (postgres.DefaultMaxClockSkew, 5 minutes): the run's own failure counts
                   AND f.occurred_at <= d.started_at + interval '5 minutes') AS failed_at
          FROM dunning_runs d WHERE d.workflow_id = p_run_key AND d.outcome = 'recovered'
    ),
    settle AS (
        SELECT e.type, e.source, e.occurred_at
          FROM events e, r
         WHERE e.invoice_id = r.invoice_id
           AND e.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded')
           AND e.occurred_at >= COALESCE(r.failed_at, '-infinity')
           AND (r.prev_end IS NULL OR e.occurred_at > r.prev_end)
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
    ),
    sent AS (
        SELECT s.idempotency_key, s.step, s.channel, d.decided_by,
               LEAST(s.updated_at, (SELECT min(pe.occurred_at) FROM provider_events pe
                                     WHERE pe.idempotency_key = s.idempotency_key)) AS at
          FROM sends s
          LEFT JOIN decisions d ON d.workflow_id = s.workflow_id AND d.step = s.step
         WHERE s.workflow_id = p_run_key AND s.status IN ('sent', 'logged')
    ),
    how AS (
        SELECT p.at,
               CASE
                   WHEN p.source = 'cli' THEN 'support'
                   WHEN c.step IS NOT NULL THEN 'after_click'
                   WHEN p.type = 'payment.retry_succeeded'
                     OR (p.type IS NULL AND p.reason LIKE 'retry % succeeded') THEN 'billing_retry'
                   WHEN m.step IS NULL THEN 'before_message'
                   WHEN m.decided_by = 'support' THEN 'support'
                   ELSE 'after_message'
               END AS attribution,
               p.source IS NOT DISTINCT FROM 'cli' AS by_hand,
               c.step AS c_step, c.channel AS c_channel, m.step AS m_step, m.channel AS m_channel
          FROM paid p
          LEFT JOIN LATERAL (
              SELECT sent.step, sent.channel, sent.decided_by FROM sent
               WHERE sent.at <= p.at
               ORDER BY sent.at DESC, sent.step DESC
               LIMIT 1) m ON true
          LEFT JOIN LATERAL (
              SELECT sent.step, sent.channel
                FROM provider_events pe
                JOIN sent ON sent.idempotency_key = pe.idempotency_key
               WHERE pe.kind = 'clicked' AND pe.occurred_at <= p.at AND p.source IS DISTINCT FROM 'cli'
               ORDER BY pe.occurred_at DESC
               LIMIT 1) c ON true
    )
    SELECT attribution, at,
           CASE attribution WHEN 'after_click' THEN c_step
                            WHEN 'after_message' THEN m_step
                            WHEN 'support' THEN CASE WHEN by_hand THEN 0 ELSE m_step END ELSE 0 END,
           CASE attribution WHEN 'after_click' THEN c_channel
                            WHEN 'after_message' THEN m_channel
                            WHEN 'support' THEN CASE WHEN by_hand THEN '' ELSE m_channel END ELSE '' END
      FROM how
$$;
-- +goose StatementEnd

UPDATE dunning_runs d
   SET (attribution, recovered_at, attributed_step, attributed_channel) =
       (SELECT * FROM recoup_run_attribution(d.workflow_id))
 WHERE d.outcome = 'recovered' AND d.attribution = '';

-- +goose Down
DROP FUNCTION recoup_run_attribution(text);
DROP INDEX payment_attempts_invoice;
DROP INDEX offers_workflow;
DROP INDEX sends_workflow;
DROP INDEX dunning_runs_invoice;
DROP INDEX dunning_runs_started;
ALTER TABLE dunning_runs DROP COLUMN attributed_channel;
ALTER TABLE dunning_runs DROP COLUMN attributed_step;
ALTER TABLE dunning_runs DROP COLUMN attribution;
ALTER TABLE dunning_runs DROP COLUMN recovered_at;
ALTER TABLE dunning_runs DROP COLUMN holdout_treatment;
ALTER TABLE dunning_runs DROP COLUMN holdout;
