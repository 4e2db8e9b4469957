package report_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/reporttest"
)

// the page shows, under the experiments, the "By variant, channel, tone and
// incentive" table (Build), which counts only ENDED runs, with no window and with the
// holdout's control runs mixed in. Variant B launched last week: its recovered runs have
// ended, its unrecovered ones are still open, so B shows 100% next to A's 50% although both
// recover half their runs. The experiments section (windowed) says "not enough data"; the
// table a reader sees first in the CSV and at the bottom of the page says B doubles recovery.
func TestDimensionTableDoesNotFavourTheYoungestVariant(t *testing.T) {
	st := fakes.MustStore(t)
	var runs []reporttest.Run
	for i := 0; i < 10; i++ {
		outcome := "recovered"
		if i%2 == 1 {
			outcome = "exhausted"
		}
		runs = append(runs, reporttest.Run{ID: fmt.Sprintf("a%d", i), Variant: "A", DecidedBy: "llm", Plan: "pro",
			Currency: "USD", Amount: 1000, Outcome: outcome, Started: since.Add(h), Took: 20 * d})
		if i%2 == 1 {
			outcome = "" // B's unrecovered runs are still in their schedule
		}
		runs = append(runs, reporttest.Run{ID: fmt.Sprintf("b%d", i), Variant: "B", DecidedBy: "llm", Plan: "pro",
			Currency: "USD", Amount: 1000, Outcome: outcome, Started: since.Add(40 * d), Took: 2 * d})
	}
	reporttest.Write(t, st.Pool(), runs...)
	rows, err := report.Build(context.Background(), st.Pool(), since)
	if err != nil {
		t.Fatal(err)
	}
	rate := map[string]float64{}
	for _, r := range rows {
		if r.Dimension == report.Variant {
			rate[r.Value] = r.RecoveryRate
		}
	}
	if rate["B"] > rate["A"] {
		t.Errorf("equal variants: the page's variant table shows A %.0f%%, B %.0f%% (B's open runs left out)", rate["A"]*100, rate["B"]*100)
	}
}
