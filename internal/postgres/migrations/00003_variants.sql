-- +goose Up
-- Which prompt variant (A/B) and which policy version each decision used.
ALTER TABLE decisions ADD COLUMN variant text NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN policy_version text NOT NULL DEFAULT '';
CREATE INDEX decisions_invoice ON decisions (invoice_id);

-- +goose Down
DROP INDEX decisions_invoice;
ALTER TABLE decisions DROP COLUMN policy_version;
ALTER TABLE decisions DROP COLUMN variant;
