// Package postgres is Recoup's PostgreSQL adapter (pgx/v5): the event log, customer profiles,
// invoices and payment attempts, decisions, exactly-once send reservations, offers and run
// outcomes. Schema migrations are embedded and applied with goose.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrUnknownCustomer is returned when no profile exists for a customer.
var ErrUnknownCustomer = errors.New("unknown customer")

// ErrEventConflict is returned when an event id was already recorded with another body.
var ErrEventConflict = errors.New("event id already recorded with a different body")

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	maxSkew time.Duration
}

// DefaultMaxClockSkew is how far in the future (by PostgreSQL's clock) an event's occurred_at
// or a profile's updated_at may lie before it is clamped, when Options.MaxClockSkew is zero.
const DefaultMaxClockSkew = 5 * time.Minute

// Options tune Open.
type Options struct {
	// Schema, when set, is the search_path of every connection (tests use one per test).
	Schema string
	// MaxConns caps the pool (0: pool_max_conns from the URL, or at least 10).
	MaxConns int32
	// MaxClockSkew bounds how far in the future a recorded time may lie (RECOUP_MAX_CLOCK_SKEW;
	// 0: DefaultMaxClockSkew). Later times are clamped to now + MaxClockSkew, so that one
	// future-dated event or snapshot cannot outrank every later one for good.
	MaxClockSkew time.Duration
	// Tracer, when set, observes every statement the pool's connections run (tests count
	// the round trips an operation costs).
	Tracer pgx.QueryTracer
}

// Open connects to databaseURL and checks the connection.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if !strings.Contains(databaseURL, "pool_max_conns") {
		// The relay holds one connection per invoice it is delivering (its delivery lock),
		// so pgx's default of 4 on a small machine would leave the ingress none.
		cfg.MaxConns = max(cfg.MaxConns, 10)
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	if opts.MaxClockSkew < 0 {
		return nil, fmt.Errorf("RECOUP_MAX_CLOCK_SKEW: %v is negative", opts.MaxClockSkew)
	}
	skew := opts.MaxClockSkew
	if skew == 0 {
		skew = DefaultMaxClockSkew
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s is not reachable: %w", redactURL(cfg.ConnConfig), err)
	}
	return &Store{pool: pool, maxSkew: skew}, nil
}

func redactURL(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool exposes the pool for tests and tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrate applies every pending migration. Concurrent callers (several workers starting at
// once) are serialised by a PostgreSQL advisory lock.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]string, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// Customer is a customer profile.
type Customer struct {
	CustomerID         string
	Name               string
	Email              string
	Phone              string
	Locale             string
	TimeZone           string
	Plan               string
	LifetimeValueMinor int64
	EmailConsent       bool
	SMSConsent         bool
	CustomerSince      time.Time
	UpdatedAt          time.Time // when the profile was true at the source; newest wins
	// EmailUndeliverable and SMSUndeliverable say why the customer's current email address
	// or phone number cannot receive messages (a provider's hard bounce, drop or invalid
	// number; see RecordProviderEvent); "" while it can. A new address clears it.
	EmailUndeliverable, SMSUndeliverable string

	// For upserts: a nil consent keeps the stored one (false for a new customer). Empty
	// text fields keep the stored value too: a snapshot that omits a field does not erase it.
	EmailConsentSet, SMSConsentSet *bool
}

// UpsertCustomer inserts or updates a profile unless the stored one is newer (UpdatedAt), as
// an import does. Consent is kept per channel, newest statement wins: a consent the snapshot
// states is applied only when it is newer than the one in force (a withdrawal also when it
// is as new), so an older import cannot re-grant a consent an opt-out withdrew. An UpdatedAt
// beyond now + the maximum clock skew is clamped. It reports whether the stored profile
// changed.
func (s *Store) UpsertCustomer(ctx context.Context, c Customer) (bool, error) {
	var changed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		changed, err = s.upsertCustomer(ctx, tx, c, ConsentImport, "")
		return err
	})
	return changed, err
}

// CustomerRowError is UpsertCustomers' error: PostgreSQL refused the profile at Index (0-based).
type CustomerRowError struct {
	Index      int
	CustomerID string
	Err        error
}

func (e *CustomerRowError) Error() string { return e.Err.Error() }
func (e *CustomerRowError) Unwrap() error { return e.Err }

// UpsertCustomers upserts the profiles as UpsertCustomer does, in one transaction: when
// PostgreSQL refuses one (a *CustomerRowError says which), none is written. It reports how
// many stored profiles changed.
func (s *Store) UpsertCustomers(ctx context.Context, cs []Customer) (int, error) {
	n := 0
	// In customer id order: two imports lock their customers in the same order, and never
	// deadlock each other (nor anything waiting on a customer's lock).
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(cs[a].CustomerID, cs[b].CustomerID) })
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, i := range order {
			c := cs[i]
			changed, err := s.upsertCustomer(ctx, tx, c, ConsentImport, "")
			if err != nil {
				return &CustomerRowError{Index: i, CustomerID: c.CustomerID, Err: err}
			}
			if changed {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) upsertCustomer(ctx context.Context, tx pgx.Tx, c Customer, source, evidence string) (bool, error) {
	if err := lockCustomer(ctx, tx, c.CustomerID); err != nil {
		return false, err
	}
	var limit time.Time
	if err := tx.QueryRow(ctx, `SELECT now() + $1::interval`, s.maxSkew).Scan(&limit); err != nil {
		return false, fmt.Errorf("upsert customer: %w", err)
	}
	if c.UpdatedAt.After(limit) {
		c.UpdatedAt = limit
	}
	var inserted bool
	err := tx.QueryRow(ctx, `
		INSERT INTO customers (customer_id, name, email, phone, locale, time_zone, plan,
			lifetime_value_minor, customer_since, profile_updated_at)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), COALESCE(NULLIF($5, ''), 'en'), COALESCE(NULLIF($6, ''), 'UTC'),
			COALESCE(NULLIF($7, ''), 'basic'), $8, $9, $10)
		ON CONFLICT (customer_id) DO UPDATE SET
			name = COALESCE(NULLIF($2, ''), customers.name),
			email = COALESCE(NULLIF($3, ''), customers.email),
			phone = COALESCE(NULLIF($4, ''), customers.phone),
			locale = COALESCE(NULLIF($5, ''), customers.locale),
			time_zone = COALESCE(NULLIF($6, ''), customers.time_zone),
			plan = COALESCE(NULLIF($7, ''), customers.plan),
			lifetime_value_minor = GREATEST(customers.lifetime_value_minor, EXCLUDED.lifetime_value_minor),
			customer_since = COALESCE(customers.customer_since, EXCLUDED.customer_since),
			profile_updated_at = EXCLUDED.profile_updated_at
		WHERE customers.profile_updated_at <= EXCLUDED.profile_updated_at
		RETURNING xmax = 0`,
		c.CustomerID, c.Name, c.Email, c.Phone, c.Locale, c.TimeZone, c.Plan,
		c.LifetimeValueMinor, nullTime(c.CustomerSince), c.UpdatedAt).Scan(&inserted)
	changed := err == nil
	if errors.Is(err, pgx.ErrNoRows) { // the stored profile is newer
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("upsert customer: %w", err)
	}
	if inserted {
		// Opt-outs recorded before the customer had a profile.
		if err := consentFromLedger(ctx, tx, c.CustomerID); err != nil {
			return false, err
		}
	}
	for _, st := range []struct {
		channel string
		set     *bool
	}{{"email", c.EmailConsentSet}, {"sms", c.SMSConsentSet}} {
		if st.set == nil {
			continue
		}
		ch, err := applyConsent(ctx, tx, consentStatement{CustomerID: c.CustomerID, Channel: st.channel,
			Consent: *st.set, At: c.UpdatedAt, Source: source, Evidence: evidence})
		if err != nil {
			return false, err
		}
		changed = changed || ch
	}
	return changed, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// GetCustomer returns a profile or ErrUnknownCustomer.
func (s *Store) GetCustomer(ctx context.Context, customerID string) (Customer, error) {
	var c Customer
	var email, phone *string
	var since *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT customer_id, name, email, phone, locale, time_zone, plan, lifetime_value_minor,
			email_consent, sms_consent, customer_since, profile_updated_at,
			CASE WHEN email_undeliverable_address = email THEN email_undeliverable_reason ELSE '' END,
			CASE WHEN sms_undeliverable_address = phone THEN sms_undeliverable_reason ELSE '' END
		FROM customers WHERE customer_id = $1`, customerID).Scan(
		&c.CustomerID, &c.Name, &email, &phone, &c.Locale, &c.TimeZone, &c.Plan,
		&c.LifetimeValueMinor, &c.EmailConsent, &c.SMSConsent, &since, &c.UpdatedAt,
		&c.EmailUndeliverable, &c.SMSUndeliverable)
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, ErrUnknownCustomer
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer: %w", err)
	}
	if email != nil {
		c.Email = *email
	}
	if phone != nil {
		c.Phone = *phone
	}
	if since != nil {
		c.CustomerSince = *since
	}
	return c, nil
}
