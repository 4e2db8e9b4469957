// Package store is Recoup's PostgreSQL adapter (pgx/v5): the event log, customer profiles,
// invoices and payment attempts, decisions, exactly-once send reservations, offers and run
// outcomes. Schema migrations are embedded and applied with goose.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	pool *pgxpool.Pool
}

// Options tune Open.
type Options struct {
	// Schema, when set, is the search_path of every connection (tests use one per test).
	Schema string
	// MaxConns caps the pool (0: pgx default).
	MaxConns int32
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
	return &Store{pool: pool}, nil
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

	// For upserts: a nil consent keeps the stored one (false for a new customer). Empty
	// text fields keep the stored value too: a snapshot that omits a field does not erase it.
	EmailConsentSet, SMSConsentSet *bool
}

// UpsertCustomer inserts or updates a profile unless the stored one is newer (UpdatedAt).
// It reports whether the stored profile changed.
func (s *Store) UpsertCustomer(ctx context.Context, c Customer) (bool, error) {
	return upsertCustomer(ctx, s.pool, c)
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, c := range cs {
			changed, err := upsertCustomer(ctx, tx, c)
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

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func upsertCustomer(ctx context.Context, db execer, c Customer) (bool, error) {
	tag, err := db.Exec(ctx, `
		INSERT INTO customers (customer_id, name, email, phone, locale, time_zone, plan,
			lifetime_value_minor, email_consent, sms_consent, customer_since, profile_updated_at)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), COALESCE(NULLIF($5, ''), 'en'), COALESCE(NULLIF($6, ''), 'UTC'),
			COALESCE(NULLIF($7, ''), 'basic'), $8, COALESCE($9, false), COALESCE($10, false), $11, $12)
		ON CONFLICT (customer_id) DO UPDATE SET
			name = COALESCE(NULLIF($2, ''), customers.name),
			email = COALESCE(NULLIF($3, ''), customers.email),
			phone = COALESCE(NULLIF($4, ''), customers.phone),
			locale = COALESCE(NULLIF($5, ''), customers.locale),
			time_zone = COALESCE(NULLIF($6, ''), customers.time_zone),
			plan = COALESCE(NULLIF($7, ''), customers.plan),
			lifetime_value_minor = GREATEST(customers.lifetime_value_minor, EXCLUDED.lifetime_value_minor),
			email_consent = COALESCE($9, customers.email_consent),
			sms_consent = COALESCE($10, customers.sms_consent),
			customer_since = COALESCE(customers.customer_since, EXCLUDED.customer_since),
			profile_updated_at = EXCLUDED.profile_updated_at
		WHERE customers.profile_updated_at <= EXCLUDED.profile_updated_at`,
		c.CustomerID, c.Name, c.Email, c.Phone, c.Locale, c.TimeZone, c.Plan,
		c.LifetimeValueMinor, c.EmailConsentSet, c.SMSConsentSet, nullTime(c.CustomerSince), c.UpdatedAt)
	if err != nil {
		return false, fmt.Errorf("upsert customer: %w", err)
	}
	return tag.RowsAffected() == 1, nil
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
			email_consent, sms_consent, customer_since, profile_updated_at
		FROM customers WHERE customer_id = $1`, customerID).Scan(
		&c.CustomerID, &c.Name, &email, &phone, &c.Locale, &c.TimeZone, &c.Plan,
		&c.LifetimeValueMinor, &c.EmailConsent, &c.SMSConsent, &since, &c.UpdatedAt)
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
