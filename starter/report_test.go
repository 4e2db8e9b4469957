package main

import (
	"context"
	"encoding/csv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/reporttest"
)

// reportStore holds two prompt variants' runs, started 40 days ago (their window closed).
func reportStore(t *testing.T) *postgres.Store {
	st := fakes.MustStore(t)
	start := time.Now().UTC().AddDate(0, 0, -40)
	for i, v := range []string{"A", "B", "A", "B"} {
		r := reporttest.Run{ID: "wf-" + string(rune('a'+i)), Variant: v, DecidedBy: "rules", Plan: "pro", Currency: "JPY",
			Amount: 5000, Outcome: "exhausted", Started: start, Took: 72 * time.Hour,
			Sends: []reporttest.Send{{Step: 1, Channel: "email", After: time.Hour}}}
		if i < 3 {
			r.Outcome, r.Took = "recovered", 3*time.Hour
		}
		reporttest.Write(t, st.Pool(), r)
	}
	return st
}

func TestReportWritesThePageAndTheExperiments(t *testing.T) {
	st := reportStore(t)
	file := filepath.Join(t.TempDir(), "recovery.html")
	out, err := runWithDeps(&deps{st: st}, "report", "--html", file)
	if err != nil || !strings.Contains(out, "wrote "+file+" (1 experiments, 4 runs counted") {
		t.Fatalf("report --html: %q, %v", out, err)
	}
	page, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(page), `data-experiment="variant"`) || strings.Count(string(page), "<svg") != 3 {
		t.Errorf("the page (%d bytes, %v) lacks the variant experiment or its 3 charts", len(page), err)
	}
	out, err = runWithDeps(&deps{st: st}, "report", "--csv", "--experiments")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || recs[1][3] != "A" || recs[1][10] != "10000" || recs[2][3] != "B" ||
		!strings.HasPrefix(recs[2][24], "not enough data (2 of ") {
		t.Errorf("report --csv --experiments:\n%s(%v)", out, err)
	}
	out, err = runWithDeps(&deps{st: st}, "report", "--experiments")
	if err != nil || !strings.Contains(out, "mixture sequential probability ratio test") || !strings.Contains(out, "10000") {
		t.Errorf("report --experiments:\n%s(%v)", out, err)
	}
}

// The ingress serves the page at /reports/recovery only with RECOUP_REPORT_TOKEN set, and
// only to a request bearing it.
func TestServeRecoveryPageBehindItsToken(t *testing.T) {
	st := reportStore(t)
	const token = "serve-report-token-8d2f6b1c93e047a5"
	for _, tc := range []struct {
		token, auth string
		want        int
	}{{"", "Bearer " + token, http.StatusNotFound}, {token, "", http.StatusUnauthorized},
		{token, "Bearer " + token, http.StatusOK}} {
		cfg, err := config.FromEnv(func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		cfg.WebhookSecret, cfg.ReportToken = []string{testSecret}, tc.token
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, &deps{cfg: cfg, st: st}, ln, io.Discard) }()
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+report.PagePath, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || (tc.want == http.StatusOK) != strings.Contains(string(body), `data-experiment="variant"`) {
			t.Errorf("RECOUP_REPORT_TOKEN %q, Authorization %q: %d, want %d", tc.token, tc.auth, resp.StatusCode, tc.want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}
