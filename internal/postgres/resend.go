package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup"
)

// ReconcilePendingError says that a send's reconcile window has not passed yet, or that it
// has but the provider's events have not been seen flowing past it (Watermark): a provider
// event may still name it.
type ReconcilePendingError struct {
	Key   string
	Until time.Time
	// Watermark: the window has passed, but no event of the provider received after it
	// describes a message claimed after this one: its events may be held up (SendGrid
	// retries a failed delivery for up to 72 hours), so their absence proves nothing yet.
	Watermark bool
}

func (e *ReconcilePendingError) Error() string {
	if e.Watermark {
		return fmt.Sprintf("send %s: its reconcile window ended at %s, but no event of the provider received since then names a message claimed after it: its events may be held up; a provider event may still name it",
			e.Key, e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("send %s: the reconcile window lasts until %s; a provider event may still name it",
		e.Key, e.Until.UTC().Format(time.RFC3339))
}

// NoEvidencePath is the evidence a reconcile row keeps when the deployment cannot receive
// its provider's events (ClaimResendIf with canHear false).
const NoEvidencePath = "no provider event can reach this deployment for this channel (its event path is not configured): left to reconcile, never resent blind"

// providerOfChannel names the provider whose events settle a channel's sends.
var providerOfChannel = map[string]string{"email": ConsentSendGrid, "sms": ConsentTwilio}

// ClaimResend decides, from the evidence, what becomes of a send whose outcome was unknown
// (reconcile), once its reconcile window (from the attempt's claim) has passed:
//   - a provider event named the key: the provider accepted it; it is settled as sent (if
//     applying the event had not already) and row holds it: nothing is sent again;
//   - none did, and the provider's events demonstrably flowed past the window (the
//     watermark: an event of that provider received after claimed_at + window names a
//     message claimed after this one): the provider never accepted it. The row becomes
//     superseded and resend is true: the caller sends the step's message once more, under
//     recoup.ResendKey(key) (reserved with ReserveSend, ResendOf = key). Asking again
//     returns the same answer.
//   - a resend is never resent (never a third message): its reconcile row is returned as is.
//
// Within the window, or past it without the watermark, it returns a *ReconcilePendingError
// (the caller asks again later). Any other status (sent, failed, …) is returned in row with
// resend false.
func (s *Store) ClaimResend(ctx context.Context, key string, window time.Duration) (row SendRow, resend bool, err error) {
	return s.ClaimResendIf(ctx, key, window, true)
}

// ClaimResendIf is ClaimResend where canHear says whether the deployment can receive the
// send's provider's events at all. When it cannot, the absence of an event proves nothing:
// the send is settled from evidence if some names it, and otherwise stays reconcile (its
// evidence says why: NoEvidencePath) and is never resent.
func (s *Store) ClaimResendIf(ctx context.Context, key string, window time.Duration, canHear bool) (row SendRow, resend bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row, resend = SendRow{}, false
		send, found, err := lockSendOf(ctx, tx, key)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("claim resend: no send %q", key)
		}
		if resend, err = decideResend(ctx, tx, send, window, canHear); err != nil {
			return err
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

// decideResend is ClaimResendIf's decision, under the send's locks.
func decideResend(ctx context.Context, tx pgx.Tx, send sendOf, window time.Duration, canHear bool) (bool, error) {
	key := send.Key
	var resendOf *string
	var claimedAt time.Time
	var evidence bool
	if err := tx.QueryRow(ctx, `
		SELECT resend_of, COALESCE(claimed_at, created_at),
			EXISTS (SELECT 1 FROM provider_events WHERE idempotency_key = $1)
		FROM sends WHERE idempotency_key = $1`, key).Scan(&resendOf, &claimedAt, &evidence); err != nil {
		return false, fmt.Errorf("claim resend: %w", err)
	}
	switch {
	case send.Status == SendSuperseded:
		return true, nil
	case send.Status != SendReconcile || resendOf != nil:
		return false, nil
	case evidence:
		if _, err := tx.Exec(ctx, `UPDATE sends SET status = 'sent', evidence = 'provider events name it', updated_at = now()
			WHERE idempotency_key = $1`, key); err != nil {
			return false, fmt.Errorf("settle the send from evidence: %w", err)
		}
		return false, nil
	case !canHear:
		if _, err := tx.Exec(ctx, `UPDATE sends SET evidence = $2, updated_at = now() WHERE idempotency_key = $1 AND evidence = ''`,
			key, NoEvidencePath); err != nil {
			return false, fmt.Errorf("claim resend: %w", err)
		}
		return false, nil
	}
	var due, flowed bool
	if err := tx.QueryRow(ctx, `
		SELECT $1::timestamptz + $2::interval <= clock_timestamp(),
			EXISTS (SELECT 1 FROM provider_events e JOIN sends s ON s.idempotency_key = e.idempotency_key
				WHERE e.provider = $3 AND e.received_at > $1::timestamptz + $2::interval AND s.claimed_at > $1)`,
		claimedAt, window, providerOfChannel[send.Channel]).Scan(&due, &flowed); err != nil {
		return false, fmt.Errorf("claim resend: %w", err)
	}
	if !due || !flowed {
		return false, &ReconcilePendingError{Key: key, Until: claimedAt.Add(window), Watermark: due}
	}
	if _, err := tx.Exec(ctx, `
		UPDATE sends SET status = 'superseded', updated_at = now(),
			evidence = $2, error = 'outcome was unknown and no provider event named it, while its events flowed past the reconcile window: never accepted'
		WHERE idempotency_key = $1`, key, fmt.Sprintf("no provider event named it, though events received after %s of the attempt name later messages; resent as %s", window, recoup.ResendKey(key))); err != nil {
		return false, fmt.Errorf("supersede the send: %w", err)
	}
	return true, nil
}

// IsReconcilePending reports whether err is a *ReconcilePendingError.
func IsReconcilePending(err error) bool {
	var p *ReconcilePendingError
	return errors.As(err, &p)
}
