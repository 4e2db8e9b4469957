package report_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// pageRuns is a history with a holdout (control recovers 30%, treatment 40%), two prompt
// variants (one named like markup, which the page and its charts must show as text) and model-vs-rules decisions in two segments, in USD and JPY.
func pageRuns(n int) []experiment.Run {
	rng := rand.New(rand.NewPCG(42, 1))
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	var runs []experiment.Run
	for i := range n {
		r := experiment.Run{WorkflowID: fmt.Sprintf("dunning-inv_%d", i), StartedAt: start.Add(time.Duration(i%60) * 24 * time.Hour),
			Holdout: []string{"control", "treatment"}[i%2], Variant: []string{"control", "<script>alert(1)</script>"}[i/2%2],
			DecidedBy: []string{"rules", "llm"}[i/4%2], Segment: []string{"basic", "pro"}[i/8%2],
			Currency: []string{"USD", "JPY"}[i/16%2], AmountDueMinor: 4900, MessagesSent: 1 + i%3}
		p := 0.30
		if r.Holdout == "treatment" {
			p = 0.40
		}
		if rng.Float64() < p {
			r.Recovered, r.RecoveredAmountMinor, r.TimeToRecover = true, 4900, time.Duration(1+i%50)*time.Hour
			r.Attribution, r.AttributedStep, r.AttributedChannel = experiment.AttributionAfterMessage, 1+i%3, "email"
			if r.Holdout == "treatment" && i%5 == 0 {
				r.IncentiveCostMinor = 490
			}
		} else {
			r.Lost = true
		}
		runs = append(runs, r)
	}
	return runs
}

func TestThePageIsSelfContainedWithChartsAndVerdicts(t *testing.T) {
	now := time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC)
	p := report.Page{Generated: now, Since: now.AddDate(0, 0, -120), Window: report.DefaultWindow,
		Analysis: experiment.Analyze(pageRuns(2000), experiment.Config{Now: now, Window: report.DefaultWindow}),
		Rows:     []report.Row{{Dimension: report.Variant, Value: "empathetic", Currency: "KWD", Runs: 3, Recovered: 1, RecoveryRate: 1.0 / 3, IncentiveCostMinor: 1234}}}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if os.Getenv("REPORT_PAGE_OUT") != "" {
		_ = os.WriteFile(os.Getenv("REPORT_PAGE_OUT"), b.Bytes(), 0o600)
	}
	// Nothing is fetched: no src/href/url() pointing anywhere (the SVG namespace URIs are names, not fetches).
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|url\(|@import|<script|<link`).FindString(page); m != "" {
		t.Errorf("the page refers to something outside itself: %q", m)
	}
	for _, want := range []string{`data-chart="weekly"><svg`, `data-chart="funnel"><svg`, `data-chart="spend"><svg`,
		`data-experiment="holdout" data-segment="" data-currency="USD"`, `data-experiment="decided_by" data-segment="pro" data-currency="JPY"`,
		"mixture sequential probability ratio test", "1.234", "33.3%", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(page, "<svg"); n != 3*len(p.Analysis.Experiments) {
		t.Errorf("%d charts for %d experiments, want 3 each", n, len(p.Analysis.Experiments))
	}
}

func TestAnEmptyPageSaysThereIsNothingYet(t *testing.T) {
	var b bytes.Buffer
	now := time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC)
	if err := report.WriteHTML(&b, report.Page{Generated: now, Since: now.AddDate(0, 0, -90), Window: report.DefaultWindow}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="no-experiments"`, `id="no-rows"`, "No run whose window has closed since 2026-07-02"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the empty page lacks %q", want)
		}
	}
	b.Reset()
	if err := report.WriteExperimentsTable(&b, experiment.Analysis{Counted: 3, Immature: 2}); err != nil ||
		!strings.Contains(b.String(), "no experiment with two arms among the 3 runs whose window has closed (2 still in their window)") {
		t.Errorf("the empty experiments table: %q, %v", b.String(), err)
	}
}
