package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PagePath is where the ingress serves the page (with RECOUP_REPORT_TOKEN set).
const PagePath = "/reports/recovery"

// PageTimeout bounds the time the page takes to build: past it, the queries are canceled
// (by the request's context, and by statement_timeout on ReadOnlyPool's sessions) and the
// request gets 503 saying so, rather than holding a connection of the database and the
// ingress for as long as the queries run.
const PageTimeout = 60 * time.Second

// pageTimeout is PageTimeout; tests shorten it.
var pageTimeout = PageTimeout

// Handler serves the page (GET; ?days=N: the per-dimension rows over the runs started in the
// last N days, default 90; the experiments over all their runs, see Load) to a request carrying "Authorization: Bearer <token>" (scheme case-insensitive); any
// other request gets 401 and reads nothing. As the codec server does, both tokens are
// hashed before a constant-time comparison, so that neither content nor length leaks. pool
// should be read-only (ReadOnlyPool): the page only reads. A page that takes longer than
// PageTimeout to build gets 503.
func Handler(pool *pgxpool.Pool, token string, now func() time.Time, log *slog.Logger) http.Handler {
	want := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="recoup-report"`)
			http.Error(w, "a bearer token (RECOUP_REPORT_TOKEN) is required", http.StatusUnauthorized)
			return
		}
		days := 90
		if v := r.URL.Query().Get("days"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 3660 {
				http.Error(w, "days: a whole number of days from 1 to 3660", http.StatusBadRequest)
				return
			}
			days = n
		}
		t := now().UTC()
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		p, err := Load(ctx, pool, t, t.AddDate(0, 0, -days), DefaultWindow)
		var b bytes.Buffer
		if err == nil {
			err = WriteHTML(&b, p)
		}
		if err != nil && timedOut(ctx, err) {
			log.Error("recovery page: timed out", "days", days, "timeout", pageTimeout, "error", err)
			http.Error(w, fmt.Sprintf("the report took longer than %s to build and was stopped; "+
				"try a shorter period (?days=N), or see the ingress log", pageTimeout), http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			log.Error("recovery page", "error", err)
			http.Error(w, "the report could not be built; see the ingress log", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write(b.Bytes())
	})
}

// timedOut tells whether the page's build was stopped by its deadline: the context's, or
// the server's statement_timeout (SQLSTATE 57014, query_canceled).
func timedOut(ctx context.Context, err error) bool {
	var pg *pgconn.PgError
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &pg) && pg.Code == "57014")
}

// ReadOnlyPool opens a pool like pool whose sessions default to read-only transactions
// (default_transaction_read_only), for the page: a bug in it cannot write. Its statements
// are stopped by the server after PageTimeout (statement_timeout), should the request's
// cancellation not reach it.
func ReadOnlyPool(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.MaxConns = 2
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(PageTimeout.Milliseconds(), 10)
	return pgxpool.NewWithConfig(ctx, cfg)
}
