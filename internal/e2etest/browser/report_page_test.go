package browser_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/reporttest"
)

// chromiumOnly finds Chromium alone (the recovery page needs no UI server): missing, the
// test fails with RECOUP_REQUIRE_BROWSER=1, else it is skipped.
func chromiumOnly(t *testing.T) string {
	t.Helper()
	p := envOr("RECOUP_CHROMIUM", "/usr/bin/chromium")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("the page test needs Chromium (apt-get install chromium, or RECOUP_CHROMIUM): %v", err)
		if os.Getenv("RECOUP_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (RECOUP_REQUIRE_BROWSER=1)")
		}
		t.Skip(msg)
	}
	return p
}

// pageHistory: 96 runs over two prompt variants, model and rules, two plans and three
// currencies (USD, JPY with no decimals, KWD with three), outcomes and sends by a fixed rule.
func pageHistory(now time.Time) []reporttest.Run {
	var runs []reporttest.Run
	for i := range 96 {
		r := reporttest.Run{ID: fmt.Sprintf("wf-%02d", i), Variant: []string{"A", "B"}[i%2],
			DecidedBy: []string{"rules", "llm"}[i/2%2], Plan: []string{"basic", "pro"}[i/4%2],
			Currency: "USD", Amount: 4900 + int64(i)*10, Started: now.AddDate(0, 0, -70).Add(time.Duration(i) * 10 * time.Hour)}
		switch i % 12 {
		case 8, 11:
			r.Currency, r.Amount = "JPY", 5400
		case 9, 10:
			r.Currency, r.Amount = "KWD", 12345
		}
		for s := 1; s <= 1+i%3; s++ {
			r.Sends = append(r.Sends, reporttest.Send{Step: s, Channel: []string{"email", "sms"}[s%2], After: time.Duration(s*s) * time.Hour})
		}
		r.Outcome, r.Took = "exhausted", 14*24*time.Hour
		if (i*7)%10 < 4+i%2 {
			r.Outcome, r.Took = "recovered", time.Duration(2+(i%3)*(i%3)*2)*time.Hour
		}
		if i%4 == 0 {
			r.Discount = 10
		}
		if i >= 90 { // started in the last 28 days: still inside the window
			r.Started = now.AddDate(0, 0, -3)
		}
		runs = append(runs, r)
	}
	return runs
}

type pageCell struct {
	Key   string            `json:"key"`
	Cells map[string]string `json:"cells"`
}

type pageChart struct {
	Section string  `json:"section"`
	Kind    string  `json:"kind"`
	Width   float64 `json:"width"`
	Height  float64 `json:"height"`
	Shapes  int     `json:"shapes"`
	Texts   int     `json:"texts"`
}

type pageSeen struct {
	Charts []pageChart `json:"charts"`
	Arms   []pageCell  `json:"arms"`
	Dims   []pageCell  `json:"dims"`
}

// readPage collects what the browser shows: each chart's drawn size and shapes, and the
// text of every numeric cell of the arms and per-dimension tables.
const readPage = `(() => {
  const cells = tr => { const c = {}; tr.querySelectorAll('td[data-k]').forEach(td => c[td.dataset.k] = td.innerText.trim()); return c; };
  const sec = el => { const s = el.closest('section'); return [s.dataset.experiment, s.dataset.segment, s.dataset.currency].join('|'); };
  return {
    charts: [...document.querySelectorAll('figure.chart')].map(f => {
      const s = f.querySelector('svg'); const b = s ? s.getBoundingClientRect() : {width: 0, height: 0};
      return {section: sec(f), kind: f.dataset.chart, width: b.width, height: b.height,
        shapes: s ? s.querySelectorAll('path, circle, rect').length : 0, texts: s ? s.querySelectorAll('text').length : 0};
    }),
    arms: [...document.querySelectorAll('section.experiment table.arms tr[data-arm]')].map(tr =>
      ({key: sec(tr) + '|' + tr.dataset.arm, cells: cells(tr)})),
    dims: [...document.querySelectorAll('table.dimensions tr[data-dimension]')].map(tr =>
      ({key: [tr.dataset.dimension, tr.dataset.value, tr.dataset.currency].join('|'), cells: cells(tr)})),
  };
})()`

func TestTheRecoveryPageRendersItsChartsAndShowsTheCSVsNumbers(t *testing.T) {
	chromium := chromiumOnly(t)
	st := fakes.MustStore(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	reporttest.Write(t, st.Pool(), pageHistory(now)...)
	ro, err := report.ReadOnlyPool(context.Background(), st.Pool())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ro.Close)
	const token = "browser-report-token-5c1e8a7f20d94b3b"
	srv := httptest.NewServer(report.Handler(ro, token, func() time.Time { return now }, nil))
	t.Cleanup(srv.Close)

	ctx := browser(t, chromium)
	var seen pageSeen
	step(t, ctx, "open the page with the token",
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
			if err == nil {
				_, err = cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
					network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer " + token}})
			}
			return chromedp.Void{}, err
		},
		chromedp.Navigate(srv.URL+report.PagePath+"?days=90"),
		chromedp.WaitVisible(chromedp.CSS("table.dimensions")),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var err error
			seen, err = chromedp.Evaluate[pageSeen](readPage)(ctx, tg)
			return chromedp.Void{}, err
		},
	)

	p, err := report.Load(context.Background(), st.Pool(), now, now.AddDate(0, 0, -90), report.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	checkCharts(t, seen.Charts, len(p.Analysis.Experiments))
	currencies := map[string]bool{}
	for _, e := range p.Analysis.Experiments {
		currencies[e.Currency] = true
	}
	if !currencies["JPY"] || !currencies["KWD"] {
		t.Errorf("experiments in %v; want some in JPY (no decimals) and KWD (three)", currencies)
	}
	var exp, dims bytes.Buffer
	if err := report.WriteExperimentsCSV(&exp, p.Analysis); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteCSV(&dims, p.Rows); err != nil {
		t.Fatal(err)
	}
	checkArms(t, seen.Arms, readCSV(t, &exp))
	checkDims(t, seen.Dims, readCSV(t, &dims))
}

func readCSV(t *testing.T, b *bytes.Buffer) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(b).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("CSV: %v (%d records)", err, len(recs))
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func checkCharts(t *testing.T, charts []pageChart, experiments int) {
	t.Helper()
	if experiments < 4 || len(charts) != 3*experiments {
		t.Fatalf("%d charts for %d experiments; want 3 each (weekly, funnel, spend) and several experiments", len(charts), experiments)
	}
	for _, c := range charts {
		if c.Width < 100 || c.Height < 50 || c.Shapes < 5 || c.Texts < 3 {
			t.Errorf("chart %s of %s drawn %.0fx%.0f with %d shapes and %d texts; want a visible drawing",
				c.Kind, c.Section, c.Width, c.Height, c.Shapes, c.Texts)
		}
	}
}

// shownMinor reads an amount the page shows in major units back into minor units.
func shownMinor(t *testing.T, shown, currency string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(shown, 64)
	if err != nil {
		t.Fatalf("amount %q: %v", shown, err)
	}
	return math.Round(v * math.Pow10(money.Exponent(currency)))
}

func csvFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("CSV number %q: %v", s, err)
	}
	return v
}

func checkArms(t *testing.T, shown []pageCell, rows []map[string]string) {
	t.Helper()
	byKey := map[string]map[string]string{}
	for _, s := range shown {
		byKey[s.Key] = s.Cells
	}
	if len(shown) != len(rows) {
		t.Errorf("the page shows %d arms, the CSV has %d", len(shown), len(rows))
	}
	for _, r := range rows {
		key := strings.Join([]string{r["experiment"], r["segment"], r["currency"], r["arm"]}, "|")
		c, ok := byKey[key]
		if !ok {
			t.Errorf("%s: in the CSV, not on the page", key)
			continue
		}
		cur := r["currency"]
		want := map[string]string{"runs": r["runs"], "recovered": r["recovered"], "lost": r["lost"],
			"recovery_rate": fmt.Sprintf("%.1f%%", csvFloat(t, r["recovery_rate"])*100), "verdict": r["verdict"]}
		for k, w := range want {
			if c[k] != w {
				t.Errorf("%s %s: page %q, CSV %q", key, k, c[k], w)
			}
		}
		keys := []string{"recovered_minor", "recovered_per_run_minor", "incentive_minor"}
		if r["versus"] != "" {
			keys = append(keys, "per_run_difference_minor")
		}
		for _, k := range keys {
			if got, w := shownMinor(t, c[k], cur), math.Round(csvFloat(t, r[k])); got != w {
				t.Errorf("%s %s: page %q (%v minor), CSV %s", key, k, c[k], got, r[k])
			}
		}
	}
}

func checkDims(t *testing.T, shown []pageCell, rows []map[string]string) {
	t.Helper()
	byKey := map[string]map[string]string{}
	for _, s := range shown {
		byKey[s.Key] = s.Cells
	}
	if len(shown) != len(rows) || len(rows) == 0 {
		t.Errorf("the page shows %d per-dimension rows, the CSV has %d", len(shown), len(rows))
	}
	for _, r := range rows {
		key := strings.Join([]string{r["dimension"], r["value"], r["currency"]}, "|")
		c := byKey[key]
		want := map[string]string{"runs": r["runs"], "recovered": r["recovered"],
			"recovery_rate":            fmt.Sprintf("%.1f%%", csvFloat(t, r["recovery_rate"])*100),
			"median_hours_to_recovery": fmt.Sprintf("%.1f", csvFloat(t, r["median_hours_to_recovery"])),
			"messages_per_recovery":    fmt.Sprintf("%.2f", csvFloat(t, r["messages_per_recovery"]))}
		for k, w := range want {
			if c[k] != w {
				t.Errorf("%s %s: page %q, CSV %q", key, k, c[k], w)
			}
		}
		if got := shownMinor(t, c["incentive_cost_minor"], r["currency"]); got != csvFloat(t, r["incentive_cost_minor"]) {
			t.Errorf("%s incentive: page %q, CSV %s minor", key, c["incentive_cost_minor"], r["incentive_cost_minor"])
		}
	}
}
