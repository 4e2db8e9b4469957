-- +goose Up
-- The true outcome of a dunning run that Temporal closed without the workflow recording it:
-- terminated (the Web UI's Terminate, a reset), timed out (a workflow run timeout), failed,
-- or completed without its final status. Search attributes cannot change after a run
-- closes, so DunningStatus keeps the status the run had (recorded_status); the worker's
-- reconciler (internal/closedruns) finds such runs in Temporal's visibility and records
-- their outcome here, with who and why from the close event, and closes the invoice's
-- episode in invoice_runs at the close time (not after a reset: the workflow goes on). One
-- row per Temporal run.
CREATE TABLE run_outcomes (
    workflow_id     text        NOT NULL,
    run_id          text        NOT NULL,
    invoice_id      text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('terminated', 'timed_out', 'failed', 'canceled', 'completed')),
    recorded_status text        NOT NULL, -- DunningStatus when the run closed (what the run itself last said)
    closed_by       text        NOT NULL DEFAULT '', -- the close event's identity (who terminated it), if any
    reason          text        NOT NULL DEFAULT '',
    closed_at       timestamptz NOT NULL,
    found_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX run_outcomes_invoice ON run_outcomes (invoice_id, closed_at);

-- +goose Down
DROP TABLE run_outcomes;
