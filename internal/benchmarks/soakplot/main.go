// Command soakplot draws the soak's samples (`make soak`, internal/benchmarks/soak_test.go)
// as an SVG (or a PNG, by -out's extension) of stacked panels over time: the worker's memory, the open runs and every
// backlog, the Temporal dev server's memory, PostgreSQL's size. A measurement tool, not part
// of the product binaries.
//
//	go run ./internal/benchmarks/soakplot -in docs/soak/soak.csv -out docs/soak/soak.svg
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

func main() {
	in := flag.String("in", "docs/soak/soak.csv", "the soak's CSV")
	out := flag.String("out", "docs/soak/soak.svg", "the SVG to write")
	title := flag.String("title", "", "a line under the first panel's title (command, commit, load)")
	flag.Parse()
	if err := run(*in, *out, *title); err != nil {
		fmt.Fprintln(os.Stderr, "soakplot:", err)
		os.Exit(1)
	}
}

// panel is one plot: a title, a y-axis label and the CSV columns drawn in it.
type panel struct {
	title, unit string
	series      []string
}

var panels = []panel{
	{"Worker process memory", "MB", []string{"worker_rss_mb", "worker_heap_inuse_mb"}},
	{"Open runs and backlogs", "count", []string{"open_runs", "events_undelivered", "accept_queue",
		"tq_workflow_backlog", "tq_activity_backlog", "tq_email_backlog", "tq_sms_backlog"}},
	{"Temporal dev server memory (in-memory SQLite: keeps every history)", "MB", []string{"server_rss_mb"}},
	{"PostgreSQL (Recoup's tables)", "MB", []string{"pg_mb"}},
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
}

func run(in, out, subtitle string) error {
	cols, err := readCSV(in)
	if err != nil {
		return err
	}
	minutes, ok := cols["elapsed_s"]
	if !ok {
		return fmt.Errorf("%s: no elapsed_s column", in)
	}
	for i := range minutes {
		minutes[i] /= 60
	}
	rows := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if i == 0 && subtitle != "" {
			p.Title.Text += "\n" + subtitle
		}
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
		for j, name := range pn.series {
			ys, ok := cols[name]
			if !ok {
				return fmt.Errorf("%s: no %s column", in, name)
			}
			xy := make(plotter.XYs, 0, len(ys))
			for k, y := range ys {
				if y >= 0 { // -1: not reported
					xy = append(xy, plotter.XY{X: minutes[k], Y: y})
				}
			}
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			l.Color = palette[j%len(palette)]
			l.Width = vg.Points(1.2)
			p.Add(l)
			p.Legend.Add(name, l)
		}
		rows[i] = []*plot.Plot{p}
	}
	w, h := 26*vg.Centimeter, vg.Length(len(panels))*8*vg.Centimeter
	var img interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.HasSuffix(out, ".png") {
		img = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	} else {
		img = vgsvg.New(w, h)
	}
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Centimeter / 2, PadY: vg.Centimeter / 2,
		PadTop: vg.Centimeter / 4, PadBottom: vg.Centimeter / 4, PadLeft: vg.Centimeter / 4, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// readCSV reads the soak's CSV into its columns by name.
func readCSV(path string) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	cols := map[string][]float64{}
	for _, rec := range recs[1:] {
		for i, name := range recs[0] {
			if i >= len(rec) {
				continue
			}
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s %q: %w", path, name, rec[i], err)
			}
			cols[name] = append(cols[name], v)
		}
	}
	return cols, nil
}
