-- +goose Up
-- When the right to call the provider was last claimed for a send (the first attempt, or a
-- retry after the provider refused): taken under the invoice's lock, so it orders against
-- events.received_at (invariants I1, I2).
ALTER TABLE sends ADD COLUMN claimed_at timestamptz;
UPDATE sends SET claimed_at = created_at;

-- +goose Down
ALTER TABLE sends DROP COLUMN claimed_at;
