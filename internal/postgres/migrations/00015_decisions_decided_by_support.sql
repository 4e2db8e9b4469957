-- +goose Up
-- A held message that support edited is stored as what is sent (decided_by 'support'), so
-- that the recovery report credits the message the customer read.
ALTER TABLE decisions DROP CONSTRAINT decisions_decided_by_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_decided_by_check CHECK (decided_by IN ('llm', 'rules', 'support'));

-- +goose Down
UPDATE decisions SET decided_by = 'rules' WHERE decided_by = 'support';
ALTER TABLE decisions DROP CONSTRAINT decisions_decided_by_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_decided_by_check CHECK (decided_by IN ('llm', 'rules'));
