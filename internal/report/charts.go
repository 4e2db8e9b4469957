package report

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"time"

	"github.com/go-analyze/charts"

	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// The page's charts are drawn by go-analyze/charts (MIT, pure Go, maintained), which renders
// SVG directly: the SVG is written into the page inline, so the page needs nothing from the
// network. Each chart is a <figure class="chart" data-chart="…">.

const chartW, chartH = 640, 300

func svg(render func(p *charts.Painter) error) (template.HTML, error) {
	p := charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: chartW, Height: chartH})
	if err := render(p); err != nil {
		return "", err
	}
	b, err := p.Bytes()
	if err != nil {
		return "", err
	}
	return template.HTML(b), nil // #nosec G203 -- SVG drawn by the library from our numbers and escaped labels
}

func armNames(e experiment.Experiment) []string {
	names := make([]string, len(e.Arms))
	for i, a := range e.Arms {
		names[i] = experiment.ArmLabel(a.Name)
	}
	return names
}

// weeklyChart is the recovery rate per week of start, one line per arm (percent).
func weeklyChart(e experiment.Experiment) (template.HTML, error) {
	var starts []time.Time
	for _, w := range e.Weeks {
		if !slices.ContainsFunc(starts, w.Start.Equal) {
			starts = append(starts, w.Start)
		}
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	labels := make([]string, len(starts))
	for i, s := range starts {
		labels[i] = s.Format("Jan 2")
	}
	values := make([][]float64, len(e.Arms))
	for i, a := range e.Arms {
		values[i] = make([]float64, len(starts))
		for j := range values[i] {
			values[i][j] = charts.GetNullValue()
		}
		for _, w := range e.Weeks {
			if w.Arm == a.Name && w.Runs > 0 {
				values[i][slices.IndexFunc(starts, w.Start.Equal)] = 100 * float64(w.Recovered) / float64(w.Runs)
			}
		}
	}
	return svg(func(p *charts.Painter) error {
		opt := charts.NewLineChartOptionWithData(values)
		opt.Title = charts.TitleOption{Text: "Recovery rate by week of start (%)"}
		opt.XAxis.Labels = labels
		opt.Legend = charts.LegendOption{SeriesNames: armNames(e), Offset: charts.OffsetRight}
		opt.YAxis = []charts.YAxisOption{{Min: charts.Ptr(0.0)}}
		return p.LineChart(opt)
	})
}

// funnelChart is, per step, the share of the runs sent that step's message that were
// recovered after it (percent), one bar per arm.
func funnelChart(e experiment.Experiment) (template.HTML, error) {
	steps := 0
	for _, f := range e.Funnel {
		steps = max(steps, f.Step)
	}
	if steps == 0 {
		return "", nil
	}
	labels := make([]string, steps)
	for i := range labels {
		labels[i] = fmt.Sprintf("step %d", i+1)
	}
	values := make([][]float64, len(e.Arms))
	for i, a := range e.Arms {
		values[i] = make([]float64, steps)
		for _, f := range e.Funnel {
			if f.Arm == a.Name && f.Sent > 0 {
				values[i][f.Step-1] = 100 * float64(f.RecoveredAfter) / float64(f.Sent)
			}
		}
	}
	return svg(func(p *charts.Painter) error {
		opt := charts.NewBarChartOptionWithData(values)
		opt.Title = charts.TitleOption{Text: "Recovered after the step's message (% of runs sent it)"}
		opt.CategoryAxis.Labels = labels
		opt.Legend = charts.LegendOption{SeriesNames: armNames(e), Offset: charts.OffsetRight}
		return p.BarChart(opt)
	})
}

// spendChart is the incentive spend and the recovered amount per arm, in major units.
func spendChart(e experiment.Experiment) (template.HTML, error) {
	spend, recovered := make([]float64, len(e.Arms)), make([]float64, len(e.Arms))
	exp := math.Pow10(money.Exponent(e.Currency))
	for i, a := range e.Arms {
		spend[i], recovered[i] = float64(a.IncentiveMinor)/exp, float64(a.RecoveredMinor)/exp
	}
	return svg(func(p *charts.Painter) error {
		opt := charts.NewBarChartOptionWithData([][]float64{recovered, spend})
		opt.Title = charts.TitleOption{Text: "Recovered and incentive spend (" + e.Currency + ")"}
		opt.CategoryAxis.Labels = armNames(e)
		opt.Legend = charts.LegendOption{SeriesNames: []string{"recovered", "incentive spend"}, Offset: charts.OffsetRight}
		return p.BarChart(opt)
	})
}
