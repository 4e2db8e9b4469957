package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup"
)

// ReconcilePendingError says that a send's reconcile window has not passed yet: a provider
// event may still name it.
type ReconcilePendingError struct {
	Key   string
	Until time.Time
}

func (e *ReconcilePendingError) Error() string {
	return fmt.Sprintf("send %s: the reconcile window lasts until %s; a provider event may still name it",
		e.Key, e.Until.UTC().Format(time.RFC3339))
}

// ClaimResend decides, from the evidence, what becomes of a send whose outcome was unknown
// (reconcile), once its reconcile window (from the attempt's claim) has passed:
//   - a provider event named the key: the provider accepted it; it is settled as sent (if
//     applying the event had not already) and row holds it: nothing is sent again;
//   - none did: the provider never accepted it. The row becomes superseded and resend is
//     true: the caller sends the step's message once more, under recoup.ResendKey(key)
//     (reserved with ReserveSend, ResendOf = key). Asking again returns the same answer.
//   - a resend is never resent (never a third message): its reconcile row is returned as is.
//
// Within the window it returns a *ReconcilePendingError. Any other status (sent, failed,
// …) is returned in row with resend false.
func (s *Store) ClaimResend(ctx context.Context, key string, window time.Duration) (row SendRow, resend bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row, resend = SendRow{}, false
		send, found, err := lockSendOf(ctx, tx, key)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("claim resend: no send %q", key)
		}
		var resendOf *string
		var claimedAt time.Time
		var evidence bool
		if err := tx.QueryRow(ctx, `
			SELECT resend_of, COALESCE(claimed_at, created_at),
				EXISTS (SELECT 1 FROM provider_events WHERE idempotency_key = $1)
			FROM sends WHERE idempotency_key = $1`, key).Scan(&resendOf, &claimedAt, &evidence); err != nil {
			return fmt.Errorf("claim resend: %w", err)
		}
		switch {
		case send.Status == SendSuperseded:
			resend = true
		case send.Status != SendReconcile || resendOf != nil:
		case evidence:
			if _, err := tx.Exec(ctx, `UPDATE sends SET status = 'sent', evidence = 'provider events name it', updated_at = now()
				WHERE idempotency_key = $1`, key); err != nil {
				return fmt.Errorf("settle the send from evidence: %w", err)
			}
		default:
			var due bool
			if err := tx.QueryRow(ctx, `SELECT $1::timestamptz + $2::interval <= clock_timestamp()`, claimedAt, window).Scan(&due); err != nil {
				return fmt.Errorf("claim resend: %w", err)
			}
			if !due {
				return &ReconcilePendingError{Key: key, Until: claimedAt.Add(window)}
			}
			if _, err := tx.Exec(ctx, `
				UPDATE sends SET status = 'superseded', updated_at = now(),
					evidence = $2, error = 'outcome was unknown and no provider event named it within the reconcile window: never accepted'
				WHERE idempotency_key = $1`, key, fmt.Sprintf("no provider event within %s of the attempt; resent as %s", window, recoup.ResendKey(key))); err != nil {
				return fmt.Errorf("supersede the send: %w", err)
			}
			resend = true
		}
		row, err = scanSend(tx.QueryRow(ctx, `
			SELECT idempotency_key, status, provider_message_id, attempts, error FROM sends WHERE idempotency_key = $1`, key))
		return err
	})
	if err != nil {
		return SendRow{}, false, err
	}
	return row, resend, nil
}

// IsReconcilePending reports whether err is a *ReconcilePendingError.
func IsReconcilePending(err error) bool {
	var p *ReconcilePendingError
	return errors.As(err, &p)
}
