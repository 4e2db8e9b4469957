package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// A database written before 00005 is repaired by it: future-dated times are clamped, the
// opt-outs recorded before consent was stored withdraw it, and the runs it knows become the
// invoices' first runs.
func TestMigrationRepairsAnExistingLog(t *testing.T) {
	ctx := context.Background()
	st := storeMigratedTo(t, 4)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO customers (customer_id, email, phone, email_consent, sms_consent, profile_updated_at)
			VALUES ('cus_1', 'ada@example.com', '+14155552671', true, true, $1), ('cus_2', '', '', true, true, $2)`,
			[]any{t0.Add(-time.Hour), future}},
		{`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
			VALUES ('inv_1', 'cus_1', 4900, 'USD', 'open', $1, $1)`, []any{t0.Add(-2 * time.Hour)}},
		{`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body, delivered_at)
			VALUES ('evt_f', 'payment.failed', 'test', 'inv_2', 'cus_2', $1, '{}', now()),
			('evt_o', 'dunning.opt_out', 'test', 'inv_1', NULL, $2, '{"channel":"sms"}', now())`, []any{future, t0}},
		{`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, started_at, ended_at)
			VALUES ('dunning-inv_1', 'inv_1', 'cus_1', 'recovered', $1, $2)`, []any{t0.Add(-2 * time.Hour), t0.Add(time.Hour)}},
		{`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, started_at) VALUES ('dunning-inv_2', 'inv_2', 'cus_2', $1)`,
			[]any{t0}},
	} {
		if _, err := st.Pool().Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var occurred, received, original time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT occurred_at, received_at, occurred_at_original FROM events WHERE event_id = 'evt_f'`).
		Scan(&occurred, &received, &original); err != nil {
		t.Fatal(err)
	}
	if !occurred.Equal(received.Add(5*time.Minute)) || !original.Equal(future) {
		t.Errorf("future-dated event: occurred_at %v, received %v, original %v", occurred, received, original)
	}
	if c, err := st.GetCustomer(ctx, "cus_2"); err != nil || !c.UpdatedAt.Before(future) {
		t.Errorf("future-dated profile: %v, %v", c.UpdatedAt, err)
	}
	if c, err := st.GetCustomer(ctx, "cus_1"); err != nil || c.SMSConsent || !c.EmailConsent {
		t.Errorf("after the past sms opt-out: %+v, %v", c, err)
	}
	if l, err := st.ConsentLedger(ctx, "cus_1"); err != nil || len(l) != 1 || l[0].EvidenceEventID != "evt_o" || !l[0].Applied {
		t.Errorf("ledger = %+v, %v", l, err)
	}
	for inv, open := range map[string]bool{"inv_1": false, "inv_2": true} {
		runs, err := st.InvoiceRuns(ctx, inv)
		if err != nil || len(runs) != 1 || runs[0].Open != open || runs[0].RunKey != "dunning-"+inv || runs[0].Episode != 1 {
			t.Errorf("runs of %s = %+v, %v; want run 1, open %v", inv, runs, err, open)
		}
	}
}

// storeMigratedTo opens a store on a fresh schema migrated up to version (not further).
func storeMigratedTo(t *testing.T, version int64) *postgres.Store {
	t.Helper()
	fakes.RequireServices(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fakes.DatabaseURL())
	if err != nil {
		t.Fatalf("PostgreSQL is required for this test: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	st, err := postgres.Open(ctx, fakes.DatabaseURL(), postgres.Options{Schema: schema, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	db := stdlib.OpenDBFromPool(st.Pool())
	t.Cleanup(func() { _ = db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return st
}

// Migration 00018 treats the failures and successes delivered before it as fed to the
// detector (the old relay fed them on delivery) without rewriting the log, and leaves the
// undelivered ones, and everything recorded after it, to the feed.
func TestMigrationLeavesOnlyUndeliveredEventsToFeed(t *testing.T) {
	ctx := context.Background()
	st := storeMigratedTo(t, 17)
	if _, err := st.Pool().Exec(ctx, `INSERT INTO events (event_id, type, source, invoice_id, occurred_at, body, delivered_at)
		VALUES ('evt_delivered', 'payment.failed', 'test', 'inv_1', now(), '{}', now()),
		       ('evt_volume', 'payment.succeeded', 'test', 'inv_2', now(), '{}', now()),
		       ('evt_pending', 'payment.failed', 'test', 'inv_3', now(), '{}', NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO events (event_id, type, source, invoice_id, occurred_at, body)
		VALUES ('evt_new', 'payment.failed', 'test', 'inv_4', now(), '{}')`); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"evt_delivered": true, "evt_volume": true, "evt_pending": false, "evt_new": false} {
		if fed, err := st.DetectorFed(ctx, id); err != nil || fed != want {
			t.Errorf("%s: fed %v (%v), want %v", id, fed, err, want)
		}
	}
}
