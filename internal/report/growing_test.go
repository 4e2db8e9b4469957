package report_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// The always-valid test keeps its error rate over one growing sample, not over a sliding
// one (experiment.TestTheGrowingSamplePageKeepsTheStatedErrorRate): the page read for the
// last 90 days analyses each experiment over all its runs since its first, and bounds only
// the per-dimension table by the days asked for.
func TestTheExperimentsAreAnalysedOverAllTheirRunsWhateverTheDays(t *testing.T) {
	st := fakes.MustStore(t)
	f := fixture{t, st.Pool()}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range []struct {
		arm     string
		started time.Time
	}{
		{"control", now.AddDate(0, 0, -200)}, {"treatment", now.AddDate(0, 0, -200)},
		{"control", now.AddDate(0, 0, -40)}, {"treatment", now.AddDate(0, 0, -40)},
	} {
		id := "run_" + string(rune('a'+i))
		f.invoice("inv_"+id, 1000, "USD")
		f.run(id, "inv_"+id, "exhausted", r.started, 48*time.Hour)
		f.exec(`UPDATE dunning_runs SET holdout = $2 WHERE workflow_id = $1`, id, r.arm)
	}
	p, err := report.Load(context.Background(), st.Pool(), now, now.AddDate(0, 0, -90), report.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	if p.Analysis.Counted != 4 {
		t.Errorf("the experiments counted %d runs; want all 4, the two started 200 days ago too", p.Analysis.Counted)
	}
	for _, e := range p.Analysis.Experiments {
		if e.Kind == experiment.KindHoldout && (len(e.Arms) != 2 || e.Arms[0].Runs != 2 || e.Arms[1].Runs != 2) {
			t.Errorf("holdout arms %+v; want 2 runs each", e.Arms)
		}
	}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	if page := strings.Join(strings.Fields(b.String()), " "); !strings.Contains(page, "Each experiment is analysed over all its runs since its first") {
		t.Errorf("the page does not say the experiments are read over all their runs:\n%s", page[:min(len(page), 3000)])
	}
}
