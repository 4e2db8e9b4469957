package fakes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup/internal/postgres"
)

// RequireServices marks a test that needs services (PostgreSQL, the Temporal dev server,
// processes of its own): under -short (`make unit`) it is skipped; otherwise it runs, and
// a missing service fails it (MustStore, TemporalCLI) — never a silent skip.
func RequireServices(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs services (PostgreSQL, Temporal dev server or processes): skipped under -short (make unit)")
	}
}

// DatabaseURL is the PostgreSQL the tests use: TEST_DATABASE_URL, or the local server's
// "test" database.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// MustStore returns a migrated store in a fresh schema that is dropped when the test ends.
// A PostgreSQL that cannot be reached fails the test: it is never skipped.
func MustStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	RequireServices(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		tb.Fatalf("PostgreSQL is required for this test (TEST_DATABASE_URL=%s): %v", DatabaseURL(), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), DatabaseURL())
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	st, err := postgres.Open(ctx, DatabaseURL(), postgres.Options{Schema: schema, MaxConns: 8})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return st
}

// StoreBeside opens another pool on st's schema, sized as a process of Recoup sizes its own
// (postgres.Open's default): for a test that runs the ingress and the worker in one
// process, each with its own pool as deployed.
func StoreBeside(tb testing.TB, st *postgres.Store) *postgres.Store {
	tb.Helper()
	return StoreBesideWith(tb, st, postgres.Options{})
}

// StoreBesideWith is StoreBeside with options (a tracer that counts statements, a pool size);
// the schema is always st's.
func StoreBesideWith(tb testing.TB, st *postgres.Store, opts postgres.Options) *postgres.Store {
	tb.Helper()
	schema := st.Pool().Config().ConnConfig.RuntimeParams["search_path"]
	opts.Schema = schema
	other, err := postgres.Open(context.Background(), DatabaseURL(), opts)
	if err != nil {
		tb.Fatalf("open a second store on %s: %v", schema, err)
	}
	tb.Cleanup(other.Close)
	return other
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TemporalCLI is the Temporal CLI binary the tests start the dev server with: TEMPORAL_CLI,
// or .bin/temporal in the repository (built by `make temporal`). Missing fails the test.
func TemporalCLI(tb testing.TB) string {
	tb.Helper()
	RequireServices(tb)
	p := os.Getenv("TEMPORAL_CLI")
	if p == "" {
		p = filepath.Join(RepoRoot(), ".bin", "temporal")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("the Temporal CLI is required for this test; run `make temporal` (or set TEMPORAL_CLI): %v", err)
	}
	return p
}

// ProviderMock returns the URL of one of the providers' OpenAPI mocks from the environment
// variable env (SENDGRID_MOCK_URL, TWILIO_MOCK_URL or OPENAI_MOCK_URL; `make test` starts the
// mocks and sets them). Unset, the test is skipped — or fails when
// RECOUP_REQUIRE_PROVIDER_MOCKS=1, as in CI.
func ProviderMock(tb testing.TB, env string) string {
	tb.Helper()
	RequireServices(tb)
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv("RECOUP_REQUIRE_PROVIDER_MOCKS") == "1" {
			tb.Fatalf("%s is not set and RECOUP_REQUIRE_PROVIDER_MOCKS=1", env)
		}
		tb.Skipf("%s is not set: run `make test`, which starts the providers' OpenAPI mocks", env)
	}
	return u
}

// BuildWorker builds the real worker binary (./worker) into bin, for tests and benchmarks
// that run it as a process of its own.
func BuildWorker(bin string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "./worker")
	cmd.Dir = RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// WithSearchPath adds the schema as the search_path runtime parameter of a PostgreSQL URL or
// DSN (pgx passes unknown URL parameters and DSN keywords to the server), so a worker
// process uses a test's schema.
func WithSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("database URL: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}
