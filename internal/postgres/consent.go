package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sources of a consent statement in the consent ledger.
const (
	ConsentBillingEvent = "billing_event" // a dunning.opt_out event
	ConsentSnapshot     = "snapshot"      // the customer snapshot of a payment.failed event
	ConsentImport       = "import"        // `starter customers import`, UpsertCustomer
)

// ConsentChange is one row of a customer's consent ledger.
type ConsentChange struct {
	Channel         string
	Consent         bool
	Source          string
	EvidenceEventID string
	At              time.Time // when it was true at the source
	Applied         bool      // false: older than the statement in force, kept as evidence only
}

// ConsentLedger lists a customer's consent changes and opt-outs, in the order they were
// recorded.
func (s *Store) ConsentLedger(ctx context.Context, customerID string) ([]ConsentChange, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT channel, consent, source, COALESCE(evidence_event_id, ''), at, applied
		FROM consent_ledger WHERE customer_id = $1 ORDER BY id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("read the consent ledger: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ConsentChange, error) {
		var c ConsentChange
		err := r.Scan(&c.Channel, &c.Consent, &c.Source, &c.EvidenceEventID, &c.At, &c.Applied)
		return c, err
	})
}

type consentStatement struct {
	CustomerID string
	Channel    string // email | sms
	Consent    bool
	At         time.Time
	Source     string
	Evidence   string // event id, or ""
}

// consentColumns are the customers columns of each channel's consent (never user input).
var consentColumns = map[string][2]string{
	"email": {"email_consent", "email_consent_at"},
	"sms":   {"sms_consent", "sms_consent_at"},
}

// lockCustomer serialises the consent changes of one customer until tx ends.
func lockCustomer(ctx context.Context, tx pgx.Tx, customerID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('recoup:customer:' || $1, 0))`, customerID); err != nil {
		return fmt.Errorf("lock customer: %w", err)
	}
	return nil
}

// applyConsent applies one consent statement, newest wins per channel: a grant only when it
// is newer than the statement in force, a withdrawal also when it is as new. A change of the
// stored value is written to the ledger; an opt-out (an event's, a provider's) or a reply
// always is (applied or not), as evidence.
// A customer without a profile keeps the opt-out in the ledger only; the profile, once
// created, starts from it (consentFromLedger). The caller holds lockCustomer.
func applyConsent(ctx context.Context, tx pgx.Tx, st consentStatement) (bool, error) {
	cols, ok := consentColumns[st.Channel]
	if !ok {
		return false, fmt.Errorf("consent: unknown channel %q", st.Channel)
	}
	var cur bool
	var curAt *time.Time // nil: never stated
	err := tx.QueryRow(ctx, `SELECT `+cols[0]+`, `+cols[1]+` FROM customers WHERE customer_id = $1`, st.CustomerID).Scan(&cur, &curAt)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("read consent: %w", err)
	}
	// The customer's own withdrawal (a STOP reply, a spam report, an unsubscribe) applies
	// whatever its time: a profile that billing sent since, repeating an older consent flag,
	// does not outrank what the customer said.
	byCustomer := !st.Consent && customerSources[st.Source]
	applies := exists && (curAt == nil || st.At.After(*curAt) || (!st.Consent && !st.At.Before(*curAt)) || byCustomer)
	if !exists {
		applies = !st.Consent // kept for the profile to come
	}
	if applies && st.Consent && st.Source != ConsentReply {
		// ... and is lifted only by their own START, never by a snapshot or an import that
		// merely repeats an older consent.
		stopped, err := stoppedByCustomer(ctx, tx, st.CustomerID, st.Channel)
		if err != nil {
			return false, err
		}
		applies = !stopped
	}
	changed := exists && applies && cur != st.Consent
	if exists && applies {
		// The statement's time never moves backwards (a late withdrawal keeps the newer time).
		if _, err := tx.Exec(ctx, `UPDATE customers SET `+cols[0]+` = $2, `+cols[1]+` = GREATEST(COALESCE(`+cols[1]+`, $3), $3) WHERE customer_id = $1`,
			st.CustomerID, st.Consent, st.At); err != nil {
			return false, fmt.Errorf("store consent: %w", err)
		}
	}
	// recorded_at: under the customer's lock (clock_timestamp), so it orders against sends'
	// claimed_at.
	if changed || st.Source == ConsentReply || (!st.Consent && st.Source != ConsentSnapshot && st.Source != ConsentImport) {
		if _, err := tx.Exec(ctx, `
			INSERT INTO consent_ledger (customer_id, channel, consent, source, evidence_event_id, at, applied, recorded_at)
			VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, clock_timestamp()) ON CONFLICT DO NOTHING`,
			st.CustomerID, st.Channel, st.Consent, st.Source, st.Evidence, st.At, applies); err != nil {
			return false, fmt.Errorf("record consent change: %w", err)
		}
	}
	return changed, nil
}

// consentFromLedger gives a profile just created the newest consent statement per channel
// its ledger holds (opt-outs recorded before it existed).
func consentFromLedger(ctx context.Context, tx pgx.Tx, customerID string) error {
	for ch, cols := range consentColumns {
		var consent bool
		var at time.Time
		err := tx.QueryRow(ctx, `
			SELECT consent, at FROM consent_ledger WHERE customer_id = $1 AND channel = $2 AND applied
			ORDER BY at DESC, consent, id DESC LIMIT 1`, customerID, ch).Scan(&consent, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the consent ledger: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE customers SET `+cols[0]+` = $2, `+cols[1]+` = $3 WHERE customer_id = $1`,
			customerID, consent, at); err != nil {
			return fmt.Errorf("store consent: %w", err)
		}
	}
	return nil
}

// customerSources are the consent sources that are the customer's own word: a reply, and
// what a provider reports of them (spam report, unsubscribe, carrier STOP).
var customerSources = map[string]bool{ConsentReply: true, ConsentSendGrid: true, ConsentTwilio: true}

// stoppedByCustomer says whether the customer withdrew consent for channel themselves (a
// reply, a spam report, an unsubscribe, a carrier STOP) and has not opted in again by reply
// (START) since, in the ledger's order.
func stoppedByCustomer(ctx context.Context, tx pgx.Tx, customerID, channel string) (bool, error) {
	var stopped bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM consent_ledger w
			WHERE w.customer_id = $1 AND w.channel = $2 AND w.applied AND NOT w.consent AND w.source = ANY($3)
			AND NOT EXISTS (SELECT 1 FROM consent_ledger g WHERE g.customer_id = w.customer_id AND g.channel = w.channel
				AND g.applied AND g.consent AND g.source = $4 AND g.id > w.id))`,
		customerID, channel, []string{ConsentReply, ConsentSendGrid, ConsentTwilio}, ConsentReply).Scan(&stopped)
	if err != nil {
		return false, fmt.Errorf("read the consent ledger: %w", err)
	}
	return stopped, nil
}
