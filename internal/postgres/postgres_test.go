package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func ptr[T any](v T) *T { return &v }

// freshSchema opens a store on a new, unmigrated schema dropped at the end of the test.
func freshSchema(t *testing.T) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	admin := fakes.MustStore(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "m_" + hex.EncodeToString(b)
	if _, err := admin.Pool().Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	st, err := postgres.Open(ctx, fakes.DatabaseURL(), postgres.Options{Schema: schema, MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := freshSchema(t)
	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if want := migrationFiles(t); !slices.Equal(applied, want) {
		t.Errorf("first Migrate applied %v, want %v", applied, want)
	}
	applied, err = st.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Errorf("second Migrate applied %v, want nothing", applied)
	}
	// The schema works: a customer can be written and read back.
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_1", UpdatedAt: time.Now()}); err != nil {
		t.Fatalf("UpsertCustomer after Migrate: %v", err)
	}
}

func TestMigrateConcurrentCallers(t *testing.T) {
	ctx := context.Background()
	st := freshSchema(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([][]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = st.Migrate(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Migrate %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if want := len(migrationFiles(t)); total != want {
		t.Errorf("concurrent Migrate calls applied %d migrations in all (%v), want %d", total, results, want)
	}
}

// migrationFiles lists the migrations shipped in the binary, in order.
func migrationFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, "postgres://%zz", postgres.Options{}); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("Open(malformed URL) = %v, want an error naming DATABASE_URL", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := postgres.Open(cctx, "postgres://recoup:s3cr3t-pw@127.0.0.1:1/recoup?sslmode=disable&connect_timeout=5", postgres.Options{})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1/recoup") || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("Open error %q does not say which server is unreachable", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("Open error leaks the password: %q", err)
	}
}

func TestUpsertCustomerNewCustomerDefaults(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	changed, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_new", UpdatedAt: at})
	if err != nil || !changed {
		t.Fatalf("UpsertCustomer = %v, %v; want changed", changed, err)
	}
	c, err := st.GetCustomer(ctx, "cus_new")
	if err != nil {
		t.Fatal(err)
	}
	want := postgres.Customer{CustomerID: "cus_new", Locale: "en", TimeZone: "UTC", Plan: "basic"}
	if c.CustomerID != want.CustomerID || c.Name != "" || c.Email != "" || c.Phone != "" || c.Locale != want.Locale ||
		c.TimeZone != want.TimeZone || c.Plan != want.Plan || c.EmailConsent || c.SMSConsent || !c.CustomerSince.IsZero() ||
		!c.UpdatedAt.Equal(at) {
		t.Errorf("new customer = %+v, want defaults en/UTC/basic, no consent", c)
	}
}

func fullCustomer(at time.Time) postgres.Customer {
	return postgres.Customer{
		CustomerID: "cus_1", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+14155552671",
		Locale: "en-GB", TimeZone: "Europe/London", Plan: "pro", LifetimeValueMinor: 118800,
		EmailConsentSet: ptr(true), SMSConsentSet: ptr(true),
		CustomerSince: time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC), UpdatedAt: at,
	}
}

func TestUpsertCustomerSnapshots(t *testing.T) {
	tests := []struct {
		name        string
		second      postgres.Customer
		wantChanged bool
		check       func(t *testing.T, c postgres.Customer)
	}{
		{"newer snapshot wins", postgres.Customer{CustomerID: "cus_1", Name: "Ada King", Email: "ada@king.example",
			Phone: "+442079460958", Locale: "fr-FR", TimeZone: "Europe/Paris", Plan: "enterprise",
			EmailConsentSet: ptr(false), SMSConsentSet: ptr(false), UpdatedAt: t0.Add(time.Hour)}, true,
			func(t *testing.T, c postgres.Customer) {
				if c.Name != "Ada King" || c.Email != "ada@king.example" || c.Phone != "+442079460958" || c.Locale != "fr-FR" ||
					c.TimeZone != "Europe/Paris" || c.Plan != "enterprise" || c.EmailConsent || c.SMSConsent ||
					!c.UpdatedAt.Equal(t0.Add(time.Hour)) {
					t.Errorf("after a newer snapshot: %+v", c)
				}
			}},
		{"older snapshot is ignored", postgres.Customer{CustomerID: "cus_1", Name: "Old Name", Email: "old@example.com",
			Plan: "basic", EmailConsentSet: ptr(false), SMSConsentSet: ptr(false), UpdatedAt: t0.Add(-time.Hour)}, false,
			func(t *testing.T, c postgres.Customer) {
				if c.Name != "Ada Lovelace" || c.Email != "ada@example.com" || c.Plan != "pro" || !c.EmailConsent || !c.SMSConsent ||
					!c.UpdatedAt.Equal(t0) {
					t.Errorf("an older snapshot changed the profile: %+v", c)
				}
			}},
		{"empty fields keep stored values", postgres.Customer{CustomerID: "cus_1", Plan: "enterprise", UpdatedAt: t0.Add(time.Hour)}, true,
			func(t *testing.T, c postgres.Customer) {
				if c.Plan != "enterprise" {
					t.Errorf("plan = %q, want enterprise", c.Plan)
				}
				if c.Name != "Ada Lovelace" || c.Email != "ada@example.com" || c.Phone != "+14155552671" ||
					c.Locale != "en-GB" || c.TimeZone != "Europe/London" {
					t.Errorf("a snapshot without contact fields erased them: %+v", c)
				}
			}},
		{"nil consent keeps stored consent", postgres.Customer{CustomerID: "cus_1", Name: "Ada", SMSConsentSet: ptr(false),
			UpdatedAt: t0.Add(time.Hour)}, true,
			func(t *testing.T, c postgres.Customer) {
				if !c.EmailConsent {
					t.Error("email consent lost though the snapshot did not mention it")
				}
				if c.SMSConsent {
					t.Error("sms consent still true though the snapshot withdrew it")
				}
			}},
		{"lifetime value never decreases, customer_since keeps the first", postgres.Customer{CustomerID: "cus_1",
			LifetimeValueMinor: 100, CustomerSince: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), UpdatedAt: t0.Add(time.Hour)}, true,
			func(t *testing.T, c postgres.Customer) {
				if c.LifetimeValueMinor != 118800 {
					t.Errorf("lifetime value = %d, want 118800", c.LifetimeValueMinor)
				}
				if !c.CustomerSince.Equal(time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("customer_since = %v, want 2024-01-15", c.CustomerSince)
				}
			}},
		{"same time again is applied", postgres.Customer{CustomerID: "cus_1", Plan: "enterprise", UpdatedAt: t0}, true,
			func(t *testing.T, c postgres.Customer) {
				if c.Plan != "enterprise" {
					t.Errorf("plan = %q", c.Plan)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := fakes.MustStore(t)
			if changed, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil || !changed {
				t.Fatalf("first UpsertCustomer = %v, %v", changed, err)
			}
			changed, err := st.UpsertCustomer(ctx, tt.second)
			if err != nil {
				t.Fatalf("second UpsertCustomer: %v", err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			c, err := st.GetCustomer(ctx, "cus_1")
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestGetCustomerUnknown(t *testing.T) {
	st := fakes.MustStore(t)
	_, err := st.GetCustomer(context.Background(), "cus_nobody")
	if !errors.Is(err, postgres.ErrUnknownCustomer) {
		t.Errorf("GetCustomer(unknown) = %v, want ErrUnknownCustomer", err)
	}
}

// Migrated from scratch, the consent ledger takes a statement from every source: billing's
// events, snapshots, imports, the migration's, the providers' opt-outs (00011) and the
// customers' replies (00012).
func TestMigratedConsentLedgerTakesEverySource(t *testing.T) {
	ctx := context.Background()
	st := freshSchema(t)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, src := range []string{postgres.ConsentBillingEvent, postgres.ConsentSnapshot, postgres.ConsentImport, "migration",
		postgres.ConsentSendGrid, postgres.ConsentTwilio, postgres.ConsentReply} {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO consent_ledger (customer_id, channel, consent, source, at, applied)
			VALUES ('cus_1', 'sms', false, $1, now(), true)`, src); err != nil {
			t.Errorf("source %q refused: %v", src, err)
		}
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO consent_ledger (customer_id, channel, consent, source, at, applied)
		VALUES ('cus_1', 'sms', false, 'carrier_pigeon', now(), true)`); err == nil {
		t.Error("an unknown source was accepted")
	}
}
