-- +goose Up
-- The failure-spike detector is fed from the event log (eventlog.Ingestor.FeedDetector),
-- apart from the delivery of events to dunning runs: detector_fed_at is when a
-- payment.failed or payment.succeeded was signalled to the detector (NULL: not yet; for
-- other types it stays NULL and means nothing). Events delivered before this migration were
-- fed on delivery.
ALTER TABLE events ADD COLUMN detector_fed_at timestamptz;
UPDATE events SET detector_fed_at = delivered_at
    WHERE delivered_at IS NOT NULL AND type IN ('payment.failed', 'payment.succeeded');
CREATE INDEX events_detector_unfed ON events (received_at)
    WHERE detector_fed_at IS NULL AND type IN ('payment.failed', 'payment.succeeded');

-- +goose Down
DROP INDEX events_detector_unfed;
ALTER TABLE events DROP COLUMN detector_fed_at;
