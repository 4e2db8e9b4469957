package report

import (
	"context"
	_ "embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// Page is everything `starter report --html` shows: the per-dimension rows, the experiments
// with their verdicts, and the charts drawn from them.
type Page struct {
	Generated time.Time
	Since     time.Time
	Window    time.Duration
	Rows      []Row
	Analysis  experiment.Analysis
}

// DefaultWindow is the attribution window: a run's outcome counts if it came within 28 days
// of its start, so that arms compare like for like.
const DefaultWindow = 28 * 24 * time.Hour

// Load reads the per-dimension rows of the runs started at or after since, and the
// experiments over all their runs, with the window at now. The experiments are not bounded
// by since: each is analysed over every run since its first, one growing sample, for which
// alone the always-valid test keeps its error rate however often the page is read (a sliding
// window of the last N days, looked at weekly, calls equal arms different about twice as
// often as α allows per year of looks).
func Load(ctx context.Context, pool *pgxpool.Pool, now, since time.Time, window time.Duration) (Page, error) {
	rows, err := BuildWindow(ctx, pool, now, since, window)
	if err != nil {
		return Page{}, err
	}
	runs, err := ExperimentRuns(ctx, pool, time.Time{}, window)
	if err != nil {
		return Page{}, err
	}
	return Page{Generated: now, Since: since, Window: window, Rows: rows,
		Analysis: experiment.Analyze(runs, experiment.Config{Now: now, Window: window})}, nil
}

// ExperimentCSVHeader is the header row WriteExperimentsCSV writes.
var ExperimentCSVHeader = []string{"experiment", "segment", "currency", "arm", "runs", "recovered", "lost",
	"recovery_rate", "rate_low", "rate_high", "recovered_minor", "recovered_per_run_minor", "per_run_low_minor",
	"per_run_high_minor", "incentive_minor", "median_hours_to_recovery",
	"versus", "difference", "difference_low", "difference_high", "z", "p_value", "alpha", "needed_per_arm", "verdict",
	"per_run_difference_minor", "per_run_difference_low_minor", "per_run_difference_high_minor"}

// WriteExperimentsCSV writes one row per arm of each experiment: its numbers and, for every
// arm but the first (the control), its comparison with the first. Rates and differences are
// fractions; amounts are in minor units of the currency (per-run amounts unrounded).
func WriteExperimentsCSV(w io.Writer, a experiment.Analysis) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExperimentCSVHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, e := range a.Experiments {
		for i, arm := range e.Arms {
			rec := []string{e.Kind, e.Segment, e.Currency, arm.Name, strconv.Itoa(arm.Runs),
				strconv.Itoa(arm.Recovered), strconv.Itoa(arm.Lost), f(arm.Rate), f(arm.RateLow), f(arm.RateHigh),
				strconv.FormatInt(arm.RecoveredMinor, 10), f(arm.PerRunMinor), f(arm.PerRunLow), f(arm.PerRunHigh),
				strconv.FormatInt(arm.IncentiveMinor, 10), f(arm.MedianHoursToRecover)}
			if i == 0 {
				rec = append(rec, "", "", "", "", "", "", "", "", "", "", "", "")
			} else {
				c := e.Comparisons[i-1]
				rec = append(rec, c.Base, f(c.Diff), f(c.DiffLow), f(c.DiffHigh), f(c.Z), f(c.P), f(c.Alpha),
					strconv.Itoa(c.NeededPerArm), c.Verdict, f(c.PerRunDiff), f(c.PerRunDiffLow), f(c.PerRunDiffHigh))
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

//go:embed page.html.tmpl
var pageTemplate string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct":   experiment.Percent,
	"label": experiment.ArmLabel,
	"major": func(minor any, cur string) string {
		switch v := minor.(type) {
		case int64:
			return experiment.Major(float64(v), cur)
		case float64:
			return experiment.Major(v, cur)
		}
		return fmt.Sprint(minor)
	},
	"points": func(f float64) string { return fmt.Sprintf("%+.1f", f*100) },
	"pval":   func(f float64) string { return strconv.FormatFloat(f, 'g', 3, 64) },
	"hours":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"two":    func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"dash":   dash,
	"date":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"days":   func(d time.Duration) int { return int(d.Hours() / 24) },
	"method": func() string { return experiment.Method },
	"mde":    func(f float64) string { return fmt.Sprintf("%.0f", f*100) },
}).Parse(pageTemplate))

type pageExperiment struct {
	experiment.Experiment
	WeeklySVG, FunnelSVG, SpendSVG template.HTML
	Attributions                   []string
	Rows                           []armRow
}

// armRow is an arm with its comparison against the first arm (nil for the first).
type armRow struct {
	experiment.Arm
	Cmp *experiment.Comparison
}

// WriteHTML writes the page: one self-contained HTML document (inline CSS and SVG, no
// script, nothing fetched from the network).
func WriteHTML(w io.Writer, p Page) error {
	var exps []pageExperiment
	for _, e := range p.Analysis.Experiments {
		pe := pageExperiment{Experiment: e}
		for i, a := range e.Arms {
			r := armRow{Arm: a}
			if i > 0 {
				r.Cmp = &e.Comparisons[i-1]
			}
			pe.Rows = append(pe.Rows, r)
		}
		seen := map[string]bool{}
		for _, a := range e.Arms {
			for k := range a.Attribution {
				seen[k] = true
			}
		}
		for _, k := range []string{experiment.AttributionBeforeMessage, experiment.AttributionBillingRetry,
			experiment.AttributionAfterMessage, experiment.AttributionAfterClick, experiment.AttributionSupport, ""} {
			if seen[k] {
				pe.Attributions = append(pe.Attributions, k)
			}
		}
		var err error
		if pe.WeeklySVG, err = weeklyChart(e); err == nil {
			if pe.FunnelSVG, err = funnelChart(e); err == nil {
				pe.SpendSVG, err = spendChart(e)
			}
		}
		if err != nil {
			return fmt.Errorf("chart of %s %s %s: %w", e.Kind, e.Segment, e.Currency, err)
		}
		exps = append(exps, pe)
	}
	return pageTmpl.Execute(w, struct {
		Page
		Experiments []pageExperiment
	}{p, exps})
}

// WriteExperimentsTable writes the experiments as an aligned text table: one line per arm,
// the verdict on the lines of the arms compared with the first.
func WriteExperimentsTable(w io.Writer, a experiment.Analysis) error {
	if len(a.Experiments) == 0 {
		_, err := fmt.Fprintf(w, "no experiment with two arms among the %d runs whose window has closed (%d still in their window)\n",
			a.Counted, a.Immature)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPERIMENT\tSEGMENT\tCURRENCY\tARM\tRUNS\tRECOVERED\tRATE\t95% INTERVAL\tRECOVERED AMOUNT\tPER RUN\tINCENTIVE\tVERDICT")
	for _, e := range a.Experiments {
		for i, arm := range e.Arms {
			v := "(baseline)"
			if i > 0 {
				c := e.Comparisons[i-1]
				v = fmt.Sprintf("%s (%+.1f points, p=%.3g)", c.Verdict, c.Diff*100, c.P)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s–%s\t%s\t%s\t%s\t%s\n", e.Kind, dash(e.Segment), e.Currency,
				experiment.ArmLabel(arm.Name), arm.Runs, arm.Recovered, experiment.Percent(arm.Rate),
				experiment.Percent(arm.RateLow), experiment.Percent(arm.RateHigh),
				experiment.Major(float64(arm.RecoveredMinor), e.Currency), experiment.Major(arm.PerRunMinor, e.Currency),
				experiment.Major(float64(arm.IncentiveMinor), e.Currency), v)
		}
	}
	fmt.Fprintf(tw, "\n%s.\n", experiment.Method)
	return tw.Flush()
}
