-- +goose Up
-- When the failure-spike detector last evaluated each incident. An incident holds new runs
-- only while a live detector keeps evaluating it (store.HoldIfIncident), so a lost detector
-- cannot hold new runs until max_hold.
ALTER TABLE incidents ADD COLUMN evaluated_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
ALTER TABLE incidents DROP COLUMN evaluated_at;
