package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup"
)

// Consent sources of the opt-outs the providers report (spam reports, unsubscribes, an SMS
// refused because the recipient replied STOP).
const (
	ConsentSendGrid = "sendgrid"
	ConsentTwilio   = "twilio"
)

// ProviderEvent is one delivery event of a provider about one message.
type ProviderEvent struct {
	Provider          string // "sendgrid" | "twilio" (also the consent source of an opt-out)
	ProviderEventID   string // SendGrid's sg_event_id; Twilio's MessageSid + "/" + status
	IdempotencyKey    string // the send the event names ("" when it names none of ours)
	Kind              string // a recoup.Delivery… status
	ProviderMessageID string
	ErrorCode         string // Twilio's ErrorCode, SendGrid's bounce status
	Reason            string // the provider's reason, recipient redacted
	// Unreachable: the event proves the contact cannot receive messages (hard bounce, drop,
	// invalid or dead number): stored on the customer.
	Unreachable bool
	// OptOut: the event is the recipient's opt-out of the send's channel (spam report,
	// unsubscribe, STOP): stored in the consent ledger and delivered to the run.
	OptOut     bool
	OccurredAt time.Time
	Body       []byte // the event as the provider sent it (one element of a batch), JSON
}

// ProviderEventResult says what recording one provider event did.
type ProviderEventResult struct {
	Duplicate bool
	Note      string
	// OptOutEventID is the dunning.opt_out recorded in the event log for the run to hear
	// (the relay delivers it), when the event was an opt-out.
	OptOutEventID string
}

// RecordProviderEvent records a provider's delivery event exactly once (a redelivery is a
// harmless Duplicate) and applies it, in one transaction, so that when it returns without
// error the event is durable and its effects are stored:
//   - the send it names gets the provider's status (never moved back by an older or
//     lower-ranked event: events of one key may arrive in any order);
//   - a send whose outcome was unknown (reconcile), or refused with an ambiguous answer
//     (retry), is settled as sent: the provider accepted it, so it is never sent again; a
//     superseded send (resent after the window) learns it was accepted late, a duplicate;
//   - an unreachable contact is stored on the customer (the address it was);
//   - an opt-out becomes a dunning.opt_out in the event log (consent ledger, source the
//     provider, evidence the event), which the relay delivers to the invoice's run.
//
// The send's invoice and customer locks are taken as ReserveSend takes them, so a send
// claimed after an opt-out was recorded is refused.
func (s *Store) RecordProviderEvent(ctx context.Context, e ProviderEvent) (ProviderEventResult, error) {
	var res ProviderEventResult
	if e.Provider != ConsentSendGrid && e.Provider != ConsentTwilio {
		return res, fmt.Errorf("provider event: unknown provider %q", e.Provider)
	}
	if e.ProviderEventID == "" {
		return res, errors.New("provider event: the provider's event id is required")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = ProviderEventResult{}
		send, found, err := lockSendOf(ctx, tx, e.IdempotencyKey)
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `
			INSERT INTO provider_events (provider, provider_event_id, idempotency_key, kind, provider_message_id,
				error_code, reason, occurred_at, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (provider, provider_event_id) DO NOTHING RETURNING id`,
			e.Provider, e.ProviderEventID, e.IdempotencyKey, e.Kind, e.ProviderMessageID, e.ErrorCode,
			e.Reason, e.OccurredAt, e.Body).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			res.Duplicate, res.Note = true, "duplicate of a recorded provider event"
			return nil
		}
		if err != nil {
			return fmt.Errorf("record provider event: %w", err)
		}
		if !found {
			res.Note = "names no send of ours; kept as evidence only"
		} else if res, err = s.applyProviderEvent(ctx, tx, e, send); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE provider_events SET apply_note = $2 WHERE id = $1`, id, res.Note)
		return err
	})
	return res, err
}

// sendOf is what applying an event needs of the send it names.
type sendOf struct {
	Key, Status, Channel, CustomerID, InvoiceID, ProviderMessageID string
	Rank                                                           int
	StatusAt                                                       *time.Time
}

// lockSendOf finds the send a key names and takes its invoice's and customer's locks (the
// order ReserveSend takes them in), then reads the row for update.
func lockSendOf(ctx context.Context, tx pgx.Tx, key string) (sendOf, bool, error) {
	var x sendOf
	if key == "" {
		return x, false, nil
	}
	err := tx.QueryRow(ctx, `SELECT invoice_id, customer_id FROM sends WHERE idempotency_key = $1`, key).Scan(&x.InvoiceID, &x.CustomerID)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, false, nil
	}
	if err != nil {
		return x, false, fmt.Errorf("find the event's send: %w", err)
	}
	if err := lockInvoice(ctx, tx, x.InvoiceID); err != nil {
		return x, false, err
	}
	if err := lockCustomer(ctx, tx, x.CustomerID); err != nil {
		return x, false, err
	}
	err = tx.QueryRow(ctx, `
		SELECT idempotency_key, status, channel, provider_message_id, provider_status_rank, provider_status_at
		FROM sends WHERE idempotency_key = $1 FOR UPDATE`, key).Scan(&x.Key, &x.Status, &x.Channel, &x.ProviderMessageID, &x.Rank, &x.StatusAt)
	if err != nil {
		return x, false, fmt.Errorf("read the event's send: %w", err)
	}
	return x, true, nil
}

// applyProviderEvent applies a recorded event to its send (see RecordProviderEvent).
func (s *Store) applyProviderEvent(ctx context.Context, tx pgx.Tx, e ProviderEvent, send sendOf) (ProviderEventResult, error) {
	var res ProviderEventResult
	var notes []string
	evidence := fmt.Sprintf("%s event %s (%s)", e.Provider, e.ProviderEventID, e.Kind)
	rank := recoup.ProviderStatusRank(e.Kind)
	newer := rank > send.Rank || (rank == send.Rank && (send.StatusAt == nil || e.OccurredAt.After(*send.StatusAt)))
	if rank > 0 && newer {
		if _, err := tx.Exec(ctx, `
			UPDATE sends SET provider_status = $2, provider_status_rank = $3, provider_status_at = $4, updated_at = now()
			WHERE idempotency_key = $1`, send.Key, e.Kind, rank, e.OccurredAt); err != nil {
			return res, fmt.Errorf("store the provider status: %w", err)
		}
		notes = append(notes, "provider status "+e.Kind)
	} else {
		notes = append(notes, "older than the provider status in force; kept as evidence")
	}
	switch send.Status {
	case SendReconcile, SendRetry, SendSuperseded:
		// The provider names the key: it accepted the message. Never send it again.
		if _, err := tx.Exec(ctx, `
			UPDATE sends SET status = 'sent', provider_message_id = CASE WHEN provider_message_id = '' THEN $2 ELSE provider_message_id END,
				evidence = $3, error = CASE WHEN status = 'superseded' THEN 'accepted late, after it was resent: a duplicate' ELSE '' END,
				updated_at = now()
			WHERE idempotency_key = $1`, send.Key, e.ProviderMessageID, evidence); err != nil {
			return res, fmt.Errorf("settle the send from evidence: %w", err)
		}
		notes = append(notes, "settled "+send.Status+" as sent by evidence")
	}
	if e.Unreachable {
		if err := markUndeliverable(ctx, tx, send, e); err != nil {
			return res, err
		}
		notes = append(notes, "the customer's "+send.Channel+" contact marked undeliverable")
	}
	if e.OptOut {
		id, err := s.providerOptOut(ctx, tx, e, send)
		if err != nil {
			return res, err
		}
		res.OptOutEventID = id
		notes = append(notes, "opt-out of "+send.Channel+" recorded as "+id)
	}
	res.Note = strings.Join(notes, "; ")
	return res, nil
}

// markUndeliverable stores on the customer that the send's contact (the address or number
// it has now) cannot receive messages. The caller holds the customer's lock.
func markUndeliverable(ctx context.Context, tx pgx.Tx, send sendOf, e ProviderEvent) error {
	contact := map[string]string{"email": "email", "sms": "phone"}[send.Channel]
	if contact == "" {
		return fmt.Errorf("undeliverable: unknown channel %q", send.Channel)
	}
	reason := fmt.Sprintf("%s %s", e.Provider, e.Kind)
	if e.ErrorCode != "" {
		reason += " " + e.ErrorCode
	}
	if e.Reason != "" {
		reason += ": " + e.Reason
	}
	_, err := tx.Exec(ctx, `UPDATE customers SET `+send.Channel+`_undeliverable_address = `+contact+`, `+
		send.Channel+`_undeliverable_reason = $2, `+send.Channel+`_undeliverable_at = $3 WHERE customer_id = $1`,
		send.CustomerID, reason, e.OccurredAt)
	if err != nil {
		return fmt.Errorf("mark the contact undeliverable: %w", err)
	}
	return nil
}

// providerOptOut records the opt-out a provider reported about a send (see
// recordProviderOptOut).
func (s *Store) providerOptOut(ctx context.Context, tx pgx.Tx, e ProviderEvent, send sendOf) (string, error) {
	return s.recordProviderOptOut(ctx, tx, ProviderOptOut{Provider: e.Provider, ProviderEventID: e.ProviderEventID,
		InvoiceID: send.InvoiceID, CustomerID: send.CustomerID, Channel: send.Channel, At: e.OccurredAt,
		Reason: fmt.Sprintf("%s reported %s for message %s", e.Provider, e.Kind, send.Key)})
}

// ProviderOptOut is a customer's opt-out of a channel that a provider reported: a spam
// report, an unsubscribe, an SMS refused or answered with STOP.
type ProviderOptOut struct {
	Provider        string // "sendgrid" | "twilio": the consent ledger's source
	ProviderEventID string // the provider's id of what it reported (the opt-out's event id derives from it)
	InvoiceID       string // the invoice whose run must hear it
	CustomerID      string
	Channel         string // email | sms
	At              time.Time
	Reason          string // shown to support; no contact data
}

// RecordProviderOptOut records a provider's opt-out as a dunning.opt_out in the event log
// (source the provider), through the path billing's opt-outs take: the consent ledger
// (newest statement wins) and, by the relay, the invoice's run. Its event id derives from
// the provider's, so recording it again is a duplicate. It returns that event id.
func (s *Store) RecordProviderOptOut(ctx context.Context, o ProviderOptOut) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = s.recordProviderOptOut(ctx, tx, o)
		return err
	})
	return id, err
}

func (s *Store) recordProviderOptOut(ctx context.Context, tx pgx.Tx, o ProviderOptOut) (string, error) {
	if o.Provider != ConsentSendGrid && o.Provider != ConsentTwilio {
		return "", fmt.Errorf("provider opt-out: unknown provider %q", o.Provider)
	}
	if _, ok := consentColumns[o.Channel]; !ok || o.ProviderEventID == "" || o.InvoiceID == "" || o.CustomerID == "" {
		return "", errors.New("provider opt-out: the provider's event id, the invoice, the customer and the channel (email or sms) are required")
	}
	sum := sha256.Sum256([]byte(o.Provider + "\x00" + o.ProviderEventID))
	id := o.Provider + ":optout:" + hex.EncodeToString(sum[:16])
	at := o.At.UTC()
	body, err := json.Marshal(map[string]string{
		"type": recoup.EventOptOut, "event_id": id, "invoice_id": o.InvoiceID, "customer_id": o.CustomerID,
		"channel": o.Channel, "occurred_at": at.Format(time.RFC3339Nano), "reason": o.Reason,
	})
	if err != nil {
		return "", err
	}
	_, err = s.recordEvent(ctx, tx, Event{EventID: id, Type: recoup.EventOptOut, Source: o.Provider,
		InvoiceID: o.InvoiceID, CustomerID: o.CustomerID, OccurredAt: at, Body: body, OptOut: o.Channel})
	if err != nil && !errors.Is(err, ErrEventConflict) {
		return "", fmt.Errorf("record the provider's opt-out: %w", err)
	}
	return id, nil
}

// ProviderEvidence lists the provider events that named a key, oldest first (for support
// and tests).
func (s *Store) ProviderEvidence(ctx context.Context, key string) ([]ProviderEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT provider, provider_event_id, idempotency_key, kind, provider_message_id, error_code, reason, occurred_at
		FROM provider_events WHERE idempotency_key = $1 ORDER BY occurred_at, id`, key)
	if err != nil {
		return nil, fmt.Errorf("read provider events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProviderEvent, error) {
		var e ProviderEvent
		err := r.Scan(&e.Provider, &e.ProviderEventID, &e.IdempotencyKey, &e.Kind, &e.ProviderMessageID, &e.ErrorCode, &e.Reason, &e.OccurredAt)
		return e, err
	})
}

// ProviderStatus is what the providers said of one send.
type ProviderStatus struct {
	Status   string // the send's status (sent, reconcile, superseded, …)
	Provider string // the provider's delivery status (recoup.Delivery…), "" before any event
	Evidence string // the event that settled it, when one did
	ResendOf string
}

// GetProviderStatus returns a send's status with the provider's.
func (s *Store) GetProviderStatus(ctx context.Context, key string) (ProviderStatus, error) {
	var p ProviderStatus
	err := s.pool.QueryRow(ctx, `SELECT status, provider_status, evidence, COALESCE(resend_of, '') FROM sends WHERE idempotency_key = $1`, key).
		Scan(&p.Status, &p.Provider, &p.Evidence, &p.ResendOf)
	if err != nil {
		return p, fmt.Errorf("get provider status: %w", err)
	}
	return p, nil
}
