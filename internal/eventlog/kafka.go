package eventlog

import (
	"context"
	"errors"

	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/kafka"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// KafkaHandlers are what `starter consume` gives the Kafka consumer: handle records each
// message in the event log (an invalid or conflicting event is a kafka.Rejection, any other
// error is retried) and nudges the relay to deliver it; reject keeps a rejected message in
// rejected_events.
func KafkaHandlers(in *Ingestor, st *postgres.Store, relay *Relay) (kafka.Handler, kafka.RejectFunc) {
	handle := func(ctx context.Context, value []byte) error {
		res, _, err := in.Record(ctx, value, "kafka")
		if err == nil && !res.Duplicate && !res.ClampedFrom.IsZero() && relay.Metrics != nil {
			relay.Metrics.Clamped.WithLabelValues("kafka").Inc()
		}
		var ve *events.ValidationError
		switch {
		case errors.As(err, &ve):
			return &kafka.Rejection{Reason: ve.Error()}
		case errors.Is(err, postgres.ErrEventConflict):
			return &kafka.Rejection{Reason: err.Error()}
		case err != nil:
			return err
		}
		relay.Nudge()
		return nil
	}
	reject := func(ctx context.Context, value []byte, reason string) error {
		return st.RecordRejected(ctx, "kafka", reason, value)
	}
	return handle, reject
}
