package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
	"github.com/recoup-dunning/recoup/internal/report/reporttest"
)

var (
	expStart = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	expNow   = expStart.AddDate(0, 3, 0)
)

// expRuns: variant A (rules) recovers one of two, B (llm) one of three within the window.
var expRuns = []reporttest.Run{
	{ID: "a1", Variant: "A", DecidedBy: "rules", Plan: "pro", Currency: "USD", Amount: 10000, Outcome: "recovered",
		Started: expStart, Took: 5 * time.Hour, Sends: []reporttest.Send{{Step: 1, Channel: "email", After: time.Hour}}, Discount: 10},
	{ID: "a2", Variant: "A", DecidedBy: "rules", Plan: "pro", Currency: "USD", Amount: 5000, Outcome: "exhausted",
		Started: expStart, Took: 72 * time.Hour, Sends: []reporttest.Send{{Step: 1, Channel: "email", After: time.Hour}, {Step: 2, Channel: "sms", After: 48 * time.Hour}}},
	{ID: "b1", Variant: "B", DecidedBy: "llm", Plan: "basic", Currency: "USD", Amount: 2000, Outcome: "recovered",
		Started: expStart.Add(24 * time.Hour), Took: time.Hour},
	{ID: "b2", Variant: "B", DecidedBy: "llm", Plan: "basic", Currency: "USD", Amount: 3000, Outcome: "recovered",
		Started: expStart, Took: 40 * 24 * time.Hour, Sends: []reporttest.Send{{Step: 1, Channel: "sms", After: time.Hour}}},
	{ID: "b3", Variant: "B", DecidedBy: "llm", Plan: "basic", Currency: "USD", Amount: 3000, Started: expStart.Add(48 * time.Hour)},
}

func TestExperimentRunsReadTodaysTables(t *testing.T) {
	st := fakes.MustStore(t)
	reporttest.Write(t, st.Pool(), expRuns...)
	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), expStart, report.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]experiment.Run{}
	for _, r := range runs {
		got[r.WorkflowID] = r
	}
	a1 := got["a1"]
	if !a1.Recovered || a1.RecoveredAmountMinor != 9000 || a1.IncentiveCostMinor != 1000 || a1.TimeToRecover != 5*time.Hour ||
		a1.Attribution != experiment.AttributionAfterMessage || a1.AttributedStep != 1 || a1.AttributedChannel != "email" ||
		a1.Variant != "A" || a1.DecidedBy != "rules" || a1.Segment != "pro" || a1.Currency != "USD" {
		t.Errorf("a1 (recovered 5h after the start, one email, a 10%% discount): %+v", a1)
	}
	if a2 := got["a2"]; a2.Recovered || !a2.Lost || a2.MessagesSent != 2 {
		t.Errorf("a2 (exhausted after two messages): %+v", a2)
	}
	if b1 := got["b1"]; !b1.Recovered || b1.Attribution != experiment.AttributionBeforeMessage || b1.MessagesSent != 0 {
		t.Errorf("b1 (paid before any message): %+v", b1)
	}
	if b2 := got["b2"]; b2.Recovered || b2.Lost {
		t.Errorf("b2 (recovered after 40 days, past the 28-day window): %+v", b2)
	}
	if b3 := got["b3"]; b3.Recovered || b3.Lost || len(runs) != 5 {
		t.Errorf("b3 (open) %+v; %d runs, want 5", b3, len(runs))
	}
}

func TestTheExperimentsCSVIsThePagesNumbers(t *testing.T) {
	st := fakes.MustStore(t)
	reporttest.Write(t, st.Pool(), expRuns...)
	p, err := report.Load(context.Background(), st.Pool(), expNow, expStart, report.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := report.WriteExperimentsCSV(&b, p.Analysis); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs[1:] {
		got = append(got, strings.Join(append(r[:8:8], r[10], r[14], r[24]), ","))
	}
	// 2 runs of A against 3 of B: the smaller arm needs 2,525 with the larger half as large again (3,027 each when equal).
	want := []string{
		"variant,,USD,A,2,1,1,0.5,9000,1000,",
		"variant,,USD,B,3,1,0,0.3333333333333333,2000,0,not enough data (2 of 2525 needed)",
		"decided_by,,USD,rules,2,1,1,0.5,9000,1000,",
		"decided_by,,USD,llm,3,1,0,0.3333333333333333,2000,0,not enough data (2 of 2525 needed)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("experiments CSV (experiment..rate, recovered, incentive, verdict):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestThePageIsServedOnlyWithTheTokenAndReadsOnly(t *testing.T) {
	st := fakes.MustStore(t)
	reporttest.Write(t, st.Pool(), expRuns...)
	ro, err := report.ReadOnlyPool(context.Background(), st.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Exec(context.Background(), `DELETE FROM dunning_runs`); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write through the page's pool: %v, want refused (read-only transaction)", err)
	}
	const token = "report-test-token-7f3a9c2e51b84d06"
	srv := httptest.NewServer(report.Handler(ro, token, func() time.Time { return expNow }, nil))
	defer srv.Close()
	get := func(auth, query string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+report.PagePath+query, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, auth := range []string{"", "Bearer wrong-token", "Basic " + token, token, "Bearer " + token + "x"} {
		if code, body := get(auth, ""); code != http.StatusUnauthorized || strings.Contains(body, "data-experiment") {
			t.Errorf("Authorization %q: %d, want 401 and no report", auth, code)
		}
	}
	code, body := get("bearer "+token, "?days=120")
	if code != http.StatusOK || !strings.Contains(body, `data-experiment="variant"`) || !strings.Contains(body, "<svg") {
		t.Errorf("with the token: %d, want 200 and the page with its charts", code)
	}
	if code, _ := get("Bearer "+token, "?days=-3"); code != http.StatusBadRequest {
		t.Errorf("?days=-3: %d, want 400", code)
	}
}
