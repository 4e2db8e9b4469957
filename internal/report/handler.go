package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PagePath is where the ingress serves the page (with RECOUP_REPORT_TOKEN set).
const PagePath = "/reports/recovery"

// Handler serves the page (GET; ?days=N: the per-dimension rows over the runs started in the
// last N days, default 90; the experiments over all their runs, see Load) to a request carrying "Authorization: Bearer <token>" (scheme case-insensitive); any
// other request gets 401 and reads nothing. As the codec server does, both tokens are
// hashed before a constant-time comparison, so that neither content nor length leaks. pool
// should be read-only (ReadOnlyPool): the page only reads.
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
		p, err := Load(r.Context(), pool, t, t.AddDate(0, 0, -days), DefaultWindow)
		var b bytes.Buffer
		if err == nil {
			err = WriteHTML(&b, p)
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

// ReadOnlyPool opens a pool like pool whose sessions default to read-only transactions
// (default_transaction_read_only), for the page: a bug in it cannot write.
func ReadOnlyPool(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.MaxConns = 2
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	return pgxpool.NewWithConfig(ctx, cfg)
}
