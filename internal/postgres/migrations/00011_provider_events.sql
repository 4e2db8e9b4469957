-- +goose Up
-- Delivery events from the providers (SendGrid's Event Webhook, Twilio's status callbacks),
-- recorded before the HTTP answer is 2xx and applied to the send their idempotency key
-- names. provider_event_id is unique per provider (SendGrid's sg_event_id; Twilio's
-- MessageSid + status): a redelivered event is a harmless duplicate.
CREATE TABLE provider_events (
    id                bigserial PRIMARY KEY,
    provider          text        NOT NULL CHECK (provider IN ('sendgrid', 'twilio')),
    provider_event_id text        NOT NULL,
    idempotency_key   text        NOT NULL DEFAULT '', -- '' when the event names no key of ours
    kind              text        NOT NULL,
    provider_message_id text      NOT NULL DEFAULT '',
    error_code        text        NOT NULL DEFAULT '',
    reason            text        NOT NULL DEFAULT '', -- provider's reason, recipient redacted
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    body              jsonb       NOT NULL,
    apply_note        text        NOT NULL DEFAULT '',
    UNIQUE (provider, provider_event_id)
);
CREATE INDEX provider_events_key ON provider_events (idempotency_key, occurred_at);

-- What the provider last said of a send (accepted, delivered, deferred, bounced, dropped,
-- undelivered, failed, spam_report, unsubscribed, opened, clicked), from which event, and
-- when; resend_of names the original key of a step's second (and last) attempt.
ALTER TABLE sends ADD COLUMN provider_status text NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN provider_status_at timestamptz;
ALTER TABLE sends ADD COLUMN provider_status_rank int NOT NULL DEFAULT 0;
ALTER TABLE sends ADD COLUMN evidence text NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN resend_of text UNIQUE;
-- superseded: a reconcile row no provider event named within the reconcile window (the
-- provider never accepted it); the step's message was sent again under resend key.
ALTER TABLE sends DROP CONSTRAINT sends_status_check;
ALTER TABLE sends ADD CONSTRAINT sends_status_check
    CHECK (status IN ('reserved', 'sent', 'logged', 'retry', 'failed', 'reconcile', 'superseded'));

-- A contact the provider proved undeliverable (hard bounce, drop, invalid number), stored on
-- the customer: the address it was, why, and when. A new address makes the channel usable
-- again.
ALTER TABLE customers ADD COLUMN email_undeliverable_address text;
ALTER TABLE customers ADD COLUMN email_undeliverable_reason text NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN email_undeliverable_at timestamptz;
ALTER TABLE customers ADD COLUMN sms_undeliverable_address text;
ALTER TABLE customers ADD COLUMN sms_undeliverable_reason text NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN sms_undeliverable_at timestamptz;

-- Opt-outs the providers report (spam reports, unsubscribes) are consent statements too.
ALTER TABLE consent_ledger DROP CONSTRAINT consent_ledger_source_check;
ALTER TABLE consent_ledger ADD CONSTRAINT consent_ledger_source_check
    CHECK (source IN ('billing_event', 'snapshot', 'import', 'migration', 'sendgrid', 'twilio'));

-- +goose Down
ALTER TABLE consent_ledger DROP CONSTRAINT consent_ledger_source_check;
ALTER TABLE consent_ledger ADD CONSTRAINT consent_ledger_source_check
    CHECK (source IN ('billing_event', 'snapshot', 'import', 'migration'));
ALTER TABLE customers DROP COLUMN sms_undeliverable_at;
ALTER TABLE customers DROP COLUMN sms_undeliverable_reason;
ALTER TABLE customers DROP COLUMN sms_undeliverable_address;
ALTER TABLE customers DROP COLUMN email_undeliverable_at;
ALTER TABLE customers DROP COLUMN email_undeliverable_reason;
ALTER TABLE customers DROP COLUMN email_undeliverable_address;
UPDATE sends SET status = 'reconcile' WHERE status = 'superseded';
ALTER TABLE sends DROP CONSTRAINT sends_status_check;
ALTER TABLE sends ADD CONSTRAINT sends_status_check
    CHECK (status IN ('reserved', 'sent', 'logged', 'retry', 'failed', 'reconcile'));
ALTER TABLE sends DROP COLUMN resend_of;
ALTER TABLE sends DROP COLUMN evidence;
ALTER TABLE sends DROP COLUMN provider_status_rank;
ALTER TABLE sends DROP COLUMN provider_status_at;
ALTER TABLE sends DROP COLUMN provider_status;
DROP TABLE provider_events;
