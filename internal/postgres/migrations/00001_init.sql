-- +goose Up
-- Customers: profiles arrive with events (snapshots) or by import; the newest wins.
CREATE TABLE customers (
    customer_id          text PRIMARY KEY,
    name                 text        NOT NULL DEFAULT '',
    email                text,
    phone                text,               -- E.164
    locale               text        NOT NULL DEFAULT 'en',
    time_zone            text        NOT NULL DEFAULT 'UTC', -- IANA
    plan                 text        NOT NULL DEFAULT 'basic',
    lifetime_value_minor bigint      NOT NULL DEFAULT 0 CHECK (lifetime_value_minor >= 0),
    email_consent        boolean     NOT NULL DEFAULT false,
    sms_consent          boolean     NOT NULL DEFAULT false,
    customer_since       timestamptz,
    profile_updated_at   timestamptz NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Every event Recoup accepted, kept (event sourcing). event_id is the producer's id.
CREATE TABLE events (
    event_id       text PRIMARY KEY,
    type           text        NOT NULL,
    source         text        NOT NULL,
    invoice_id     text        NOT NULL,
    customer_id    text,
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    body           jsonb       NOT NULL,
    delivered_at   timestamptz,
    delivery_error text
);
CREATE INDEX events_undelivered ON events (received_at) WHERE delivered_at IS NULL;
CREATE INDEX events_invoice ON events (invoice_id, occurred_at);

CREATE TABLE invoices (
    invoice_id      text PRIMARY KEY,
    customer_id     text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor >= 0),
    currency        text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('open', 'paid', 'canceled')),
    first_failed_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX invoices_customer ON invoices (customer_id);

-- Each charge attempt of an invoice and how it went.
CREATE TABLE payment_attempts (
    event_id     text PRIMARY KEY REFERENCES events (event_id),
    invoice_id   text        NOT NULL,
    customer_id  text        NOT NULL,
    attempt_id   text        NOT NULL DEFAULT '',
    outcome      text        NOT NULL CHECK (outcome IN ('failed', 'succeeded')),
    failure_code text        NOT NULL DEFAULT '',
    amount_minor bigint      NOT NULL DEFAULT 0,
    currency     text        NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX payment_attempts_customer ON payment_attempts (customer_id, occurred_at);

-- One row a dunning run; the outcome is written when it ends.
CREATE TABLE dunning_runs (
    workflow_id text PRIMARY KEY,
    invoice_id  text        NOT NULL,
    customer_id text        NOT NULL,
    outcome     text CHECK (outcome IN ('recovered', 'exhausted', 'canceled', 'failed')),
    reason      text        NOT NULL DEFAULT '',
    steps       int         NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);
CREATE INDEX dunning_runs_customer ON dunning_runs (customer_id);

-- What was decided at each step, by whom, with which prompt version.
CREATE TABLE decisions (
    workflow_id     text        NOT NULL,
    step            int         NOT NULL,
    customer_id     text        NOT NULL,
    invoice_id      text        NOT NULL,
    channel         text        NOT NULL,
    tone            text        NOT NULL,
    incentive_kind  text        NOT NULL,
    incentive_value int         NOT NULL DEFAULT 0,
    subject         text        NOT NULL DEFAULT '',
    message         text        NOT NULL,
    rationale       text        NOT NULL,
    decided_by      text        NOT NULL CHECK (decided_by IN ('llm', 'rules')),
    model           text        NOT NULL DEFAULT '',
    prompt_version  text        NOT NULL,
    violations      text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, step)
);

-- Exactly-once sends: a reservation is written before the provider is called.
--   reserved  -> a provider call is (or was) in flight
--   sent      -> the provider accepted it; provider_message_id is set
--   logged    -> log delivery mode: rendered and stored, not sent
--   retry     -> the provider definitely did not accept it; the next attempt may claim it
--   failed    -> the provider rejected it for good (4xx)
--   reconcile -> outcome unknown (crash or timeout mid-call); never called again,
--                to be settled from the provider's delivery events
CREATE TABLE sends (
    idempotency_key     text PRIMARY KEY,
    workflow_id         text        NOT NULL,
    step                int         NOT NULL,
    channel             text        NOT NULL CHECK (channel IN ('email', 'sms')),
    customer_id         text        NOT NULL,
    invoice_id          text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('reserved', 'sent', 'logged', 'retry', 'failed', 'reconcile')),
    provider_message_id text        NOT NULL DEFAULT '',
    attempts            int         NOT NULL DEFAULT 1,
    subject             text        NOT NULL DEFAULT '',
    body                text        NOT NULL DEFAULT '',
    error               text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sends_customer ON sends (customer_id, created_at);
CREATE INDEX sends_reconcile ON sends (updated_at) WHERE status = 'reconcile';

-- Incentives promised to customers; announced to billing before the message goes out.
CREATE TABLE offers (
    offer_key    text PRIMARY KEY,
    workflow_id  text        NOT NULL,
    invoice_id   text        NOT NULL,
    customer_id  text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('discount_percent', 'extension_days')),
    value        int         NOT NULL CHECK (value > 0),
    expires_at   timestamptz NOT NULL,
    announced_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE offers;
DROP TABLE sends;
DROP TABLE decisions;
DROP TABLE dunning_runs;
DROP TABLE payment_attempts;
DROP TABLE invoices;
DROP TABLE events;
DROP TABLE customers;
