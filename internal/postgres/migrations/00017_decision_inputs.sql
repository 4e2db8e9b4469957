-- +goose Up
-- What a decision was made from, so that `starter prompts diff` can re-decide it offline with
-- an edited prompt set: the decider's facts (activities.RecordedInputs, with its schema
-- version), the model's raw answer and what the contact cap and the incentive budget read.
-- No email address, phone number or customer name is stored. NULL: recorded before inputs
-- were kept (not re-decidable).
ALTER TABLE decisions ADD COLUMN inputs jsonb;
CREATE INDEX decisions_created_at ON decisions (created_at);

-- +goose Down
DROP INDEX decisions_created_at;
ALTER TABLE decisions DROP COLUMN inputs;
