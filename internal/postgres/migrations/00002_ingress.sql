-- +goose Up
-- Events refused at the door (bad JSON, bad signature are not stored; invalid content is),
-- kept so a poison message is visible with its reason instead of silently dropped.
CREATE TABLE rejected_events (
    id          bigserial PRIMARY KEY,
    source      text        NOT NULL,
    reason      text        NOT NULL,
    body        bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Relay bookkeeping: how often delivery was tried and when to try next.
ALTER TABLE events ADD COLUMN delivery_attempts int NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
ALTER TABLE events DROP COLUMN next_attempt_at;
ALTER TABLE events DROP COLUMN delivery_attempts;
DROP TABLE rejected_events;
