-- +goose Up
-- The resend watermark (ClaimResend) asks whether any event of a provider was received after
-- a send's reconcile window: an index on (provider, received_at) answers it without scanning
-- every provider event.
CREATE INDEX provider_events_watermark ON provider_events (provider, received_at);

-- +goose Down
DROP INDEX provider_events_watermark;
