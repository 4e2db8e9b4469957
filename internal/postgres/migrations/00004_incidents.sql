-- +goose Up
-- Failure-spike incidents, as the detector workflow last reported them, and the dunning runs
-- holding their first message because of one.
CREATE TABLE incidents (
    id          text PRIMARY KEY,
    cohort      text NOT NULL,           -- e.g. bin=411111
    dimension   text NOT NULL,           -- gateway | bin | country | code | amount
    value       text NOT NULL,
    status      text NOT NULL,           -- open | acknowledged | released | cleared | false_alarm
    severity    text NOT NULL,
    opened_at   timestamptz NOT NULL,
    onset_at    timestamptz NOT NULL,
    cleared_at  timestamptz,
    evidence    jsonb NOT NULL,
    peak        jsonb NOT NULL,
    failures    integer NOT NULL DEFAULT 0,
    note        text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_holding ON incidents (dimension, value) WHERE status IN ('open', 'acknowledged');

CREATE TABLE held_runs (
    workflow_id  text PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id),
    held_at      timestamptz NOT NULL,
    released_at  timestamptz
);
CREATE INDEX held_runs_incident ON held_runs (incident_id) WHERE released_at IS NULL;

-- +goose Down
DROP TABLE held_runs;
DROP TABLE incidents;
