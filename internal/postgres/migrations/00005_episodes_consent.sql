-- +goose Up
-- Event times: an occurred_at further in the future than the allowed clock skew
-- (RECOUP_MAX_CLOCK_SKEW) is clamped to received_at + skew when the event is recorded; the
-- producer's value is kept in occurred_at_original.
ALTER TABLE events ADD COLUMN occurred_at_original timestamptz;
-- Delivery: an event for an invoice without a run to deliver it to is parked until the
-- invoice's next run starts; episode is the run it was delivered to (or judged against) and
-- delivery_note what delivering it did.
ALTER TABLE events ADD COLUMN parked_at timestamptz;
ALTER TABLE events ADD COLUMN episode int;
ALTER TABLE events ADD COLUMN delivery_note text NOT NULL DEFAULT '';
CREATE INDEX events_parked ON events (invoice_id) WHERE parked_at IS NOT NULL AND delivered_at IS NULL;

-- Repair rows recorded before the clamp existed (5 minutes, the default skew).
UPDATE events SET occurred_at_original = occurred_at, occurred_at = received_at + interval '5 minutes'
WHERE occurred_at > received_at + interval '5 minutes';
UPDATE payment_attempts p SET occurred_at = e.occurred_at FROM events e
WHERE p.event_id = e.event_id AND p.occurred_at > e.occurred_at;
UPDATE invoices SET updated_at = now() WHERE updated_at > now() + interval '5 minutes';
UPDATE invoices SET first_failed_at = now() WHERE first_failed_at > now() + interval '5 minutes';
UPDATE customers SET profile_updated_at = now() WHERE profile_updated_at > now() + interval '5 minutes';

-- Consent per channel, newest statement wins: *_consent_at is when the stored value was true
-- at its source (a profile snapshot, an import, an opt-out event); NULL: never stated.
ALTER TABLE customers ADD COLUMN email_consent_at timestamptz;
ALTER TABLE customers ADD COLUMN sms_consent_at timestamptz;
UPDATE customers SET email_consent_at = profile_updated_at, sms_consent_at = profile_updated_at;

-- Every change of a customer's consent, and every opt-out, with its evidence.
CREATE TABLE consent_ledger (
    id                bigserial PRIMARY KEY,
    customer_id       text        NOT NULL,
    channel           text        NOT NULL CHECK (channel IN ('email', 'sms')),
    consent           boolean     NOT NULL,
    source            text        NOT NULL CHECK (source IN ('billing_event', 'snapshot', 'import', 'migration')),
    evidence_event_id text,                 -- the event that said so (opt-out, snapshot)
    at                timestamptz NOT NULL, -- when it was true at the source
    applied           boolean     NOT NULL, -- false: an older statement than the one in force
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_ledger_customer ON consent_ledger (customer_id, channel, at);
CREATE UNIQUE INDEX consent_ledger_evidence ON consent_ledger (evidence_event_id, channel) WHERE evidence_event_id IS NOT NULL;

-- Opt-outs recorded before consent was stored: withdraw it now (newest wins).
UPDATE events e SET customer_id = i.customer_id FROM invoices i
WHERE e.type = 'dunning.opt_out' AND e.customer_id IS NULL AND i.invoice_id = e.invoice_id;
INSERT INTO consent_ledger (customer_id, channel, consent, source, evidence_event_id, at, applied)
SELECT e.customer_id, lower(btrim(e.body->>'channel')), false, 'billing_event', e.event_id, e.occurred_at,
    e.occurred_at >= COALESCE(CASE lower(btrim(e.body->>'channel')) WHEN 'email' THEN c.email_consent_at ELSE c.sms_consent_at END, '-infinity')
FROM events e LEFT JOIN customers c ON c.customer_id = e.customer_id
WHERE e.type = 'dunning.opt_out' AND e.customer_id IS NOT NULL AND lower(btrim(e.body->>'channel')) IN ('email', 'sms')
ON CONFLICT DO NOTHING;
UPDATE customers c SET email_consent = false, email_consent_at = l.at
FROM (SELECT customer_id, max(at) AS at FROM consent_ledger WHERE channel = 'email' AND applied GROUP BY customer_id) l
WHERE c.customer_id = l.customer_id;
UPDATE customers c SET sms_consent = false, sms_consent_at = l.at
FROM (SELECT customer_id, max(at) AS at FROM consent_ledger WHERE channel = 'sms' AND applied GROUP BY customer_id) l
WHERE c.customer_id = l.customer_id;

-- The dunning runs (episodes) of each invoice: episode n+1 is opened only by a payment
-- failure that occurred after episode n closed. run_key is recoup.RunKey(workflow id, episode),
-- the key of the run's rows in dunning_runs, decisions, sends and offers.
CREATE TABLE invoice_runs (
    invoice_id text        NOT NULL,
    episode    int         NOT NULL CHECK (episode >= 1),
    run_key    text        NOT NULL UNIQUE,
    status     text        NOT NULL CHECK (status IN ('open', 'closed')),
    opened_by  text,                 -- the payment.failed that opened it (NULL: started elsewhere)
    opened_at  timestamptz NOT NULL, -- when that failure occurred
    run_id     text,                 -- Temporal's run id, once started
    closed_at  timestamptz,
    close_note text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, episode)
);
CREATE INDEX invoice_runs_opened_by ON invoice_runs (opened_by);
INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_at, closed_at)
SELECT invoice_id, 1, workflow_id, CASE WHEN outcome IS NULL THEN 'open' ELSE 'closed' END, started_at, ended_at
FROM dunning_runs WHERE workflow_id NOT LIKE '%#%'
ON CONFLICT DO NOTHING;

-- +goose Down
DROP TABLE invoice_runs;
DROP TABLE consent_ledger;
ALTER TABLE customers DROP COLUMN sms_consent_at;
ALTER TABLE customers DROP COLUMN email_consent_at;
DROP INDEX events_parked;
ALTER TABLE events DROP COLUMN delivery_note;
ALTER TABLE events DROP COLUMN episode;
ALTER TABLE events DROP COLUMN parked_at;
ALTER TABLE events DROP COLUMN occurred_at_original;
