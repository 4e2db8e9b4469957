package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
)

var since = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
}

func (f fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f fixture) invoice(id string, amountMinor int64, currency string) {
	f.t.Helper()
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ($1, 'cus', $2, $3, 'open', $4, $4)`, id, amountMinor, currency, since)
}

// run inserts a run; outcome "" leaves it open (no outcome, no end).
func (f fixture) run(id, invoiceID, outcome string, started time.Time, took time.Duration) {
	f.t.Helper()
	if outcome == "" {
		f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, started_at) VALUES ($1, $2, 'cus', $3)`,
			id, invoiceID, started)
		return
	}
	f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, steps, started_at, ended_at)
		VALUES ($1, $2, 'cus', $3, 1, $4, $5)`, id, invoiceID, outcome, started, started.Add(took))
}

func (f fixture) decision(wf string, step int, variant, channel, tone, kind string, value int) {
	f.t.Helper()
	f.exec(`INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind,
			incentive_value, message, rationale, decided_by, prompt_version, variant, policy_version)
		VALUES ($1, $2, 'cus', 'inv', $3, $4, $5, $6, 'msg', 'why', 'llm', 'v1', $7, 'p1')`,
		wf, step, channel, tone, kind, value, variant)
}

func (f fixture) send(wf string, step int, channel, status string) {
	f.t.Helper()
	f.exec(`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status)
		VALUES ($1, $2, $3, $4, 'cus', 'inv', $5)`,
		fmt.Sprintf("%s/%d/%s", wf, step, channel), wf, step, channel, status)
}

func (f fixture) offer(wf string, step int, kind string, value int) {
	f.t.Helper()
	f.exec(`INSERT INTO offers (offer_key, workflow_id, invoice_id, customer_id, kind, value, expires_at)
		VALUES ($1, $2, 'inv', 'cus', $3, $4, $5)`,
		fmt.Sprintf("%s/step-%d/offer", wf, step), wf, kind, value, since.AddDate(0, 1, 0))
}

// seed writes the data set the expectations below are computed from.
//
//	run  invoice       outcome    hours  decisions (variant channel tone incentive)            msgs  cost
//	r1   10000 USD     recovered  2      A email friendly none; A sms firm disc10;               3    1500 (max of 10%,15%)
//	                                     A email firm disc15
//	r2   20000 USD     recovered  4.5    A email friendly ext7                                   1    0
//	r3    5000 USD     exhausted  72     A sms firm disc20                                       1    (not recovered)
//	r4    8010 USD     recovered  9      B email friendly disc5; A email urgent none (variant     1    400 (400.5 rounded down)
//	                                     is the first decision's: B)
//	r5   30000 EUR     recovered  6      B sms friendly disc10                                   1    3000
//	r6    1000 USD     canceled   1      B email friendly none                                   0    0
//	old  USD           recovered         A ... started before since: excluded
//	open USD           (open)            B sms friendly none: its window has closed, counted
//	                                     as not recovered
//	ctl  USD           recovered  1      A email friendly none, holdout control arm: excluded
//	slow USD           recovered  29 d   C email friendly none: paid after the 28-day window,
//	                                     counted as not recovered
//	nodec USD          recovered         no decisions: in no row
func seed(t *testing.T, pool *pgxpool.Pool) {
	f := fixture{t, pool}
	f.invoice("inv1", 10000, "USD")
	f.invoice("inv2", 20000, "USD")
	f.invoice("inv3", 5000, "USD")
	f.invoice("inv4", 8010, "USD")
	f.invoice("inv5", 30000, "EUR")
	f.invoice("inv6", 1000, "USD")
	f.invoice("inv7", 1000, "USD")

	h := time.Hour
	f.run("r1", "inv1", "recovered", since, 2*h) // started exactly at since: counts
	f.decision("r1", 1, "A", "email", "friendly", "none", 0)
	f.decision("r1", 2, "A", "sms", "firm", "discount_percent", 10)
	f.decision("r1", 3, "A", "email", "firm", "discount_percent", 15)
	f.offer("r1", 2, "discount_percent", 10)
	f.offer("r1", 3, "discount_percent", 15)
	f.send("r1", 1, "email", "sent")
	f.send("r1", 2, "sms", "sent")
	f.send("r1", 3, "email", "logged")
	f.send("r1", 3, "sms", "failed")

	f.run("r2", "inv2", "recovered", since.Add(24*h), 4*h+30*time.Minute)
	f.decision("r2", 1, "A", "email", "friendly", "extension_days", 7)
	f.offer("r2", 1, "extension_days", 7)
	f.send("r2", 1, "email", "sent")

	f.run("r3", "inv3", "exhausted", since.Add(48*h), 72*h)
	f.decision("r3", 1, "A", "sms", "firm", "discount_percent", 20)
	f.offer("r3", 1, "discount_percent", 20)
	f.send("r3", 1, "sms", "sent")

	f.run("r4", "inv4", "recovered", since.Add(72*h), 9*h)
	f.decision("r4", 2, "A", "email", "urgent", "none", 0) // inserted first; step 1 still decides the variant
	f.decision("r4", 1, "B", "email", "friendly", "discount_percent", 5)
	f.offer("r4", 1, "discount_percent", 5)
	f.send("r4", 1, "email", "sent")
	f.send("r4", 2, "email", "reserved")

	f.run("r5", "inv5", "recovered", since.Add(96*h), 6*h)
	f.decision("r5", 1, "B", "sms", "friendly", "discount_percent", 10)
	f.offer("r5", 1, "discount_percent", 10)
	f.send("r5", 1, "sms", "logged")

	f.run("r6", "inv6", "canceled", since.Add(120*h), h)
	f.decision("r6", 1, "B", "email", "friendly", "none", 0)
	f.send("r6", 1, "email", "retry")

	f.run("old", "inv7", "recovered", since.Add(-time.Second), h)
	f.decision("old", 1, "A", "email", "friendly", "none", 0)
	f.send("old", 1, "email", "sent")

	f.run("open", "inv7", "", since.Add(h), 0)
	f.decision("open", 1, "B", "sms", "friendly", "none", 0)
	f.send("open", 1, "sms", "sent")

	f.run("ctl", "inv7", "recovered", since.Add(h), h)
	f.decision("ctl", 1, "A", "email", "friendly", "none", 0)
	f.send("ctl", 1, "email", "sent")
	f.exec(`UPDATE dunning_runs SET holdout = 'control', holdout_treatment = 'rules_plain' WHERE workflow_id = 'ctl'`)

	f.run("slow", "inv7", "recovered", since.Add(h), 29*24*h)
	f.decision("slow", 1, "C", "email", "friendly", "none", 0)
	f.send("slow", 1, "email", "sent")

	f.run("nodec", "inv7", "recovered", since.Add(h), h)
}

func row(dim report.Dimension, value, cur string, runs, rec int, median float64, msgs int, cost int64) report.Row {
	r := report.Row{Dimension: dim, Value: value, Currency: cur, Runs: runs, Recovered: rec,
		MedianHoursToRecovery: median, IncentiveCostMinor: cost}
	r.RecoveryRate = float64(rec) / float64(runs)
	if rec > 0 {
		r.MessagesPerRecovery = float64(msgs) / float64(rec)
	}
	return r
}

var want = []report.Row{
	row(report.Variant, "A", "USD", 3, 2, 3.25, 4, 1500),
	row(report.Variant, "B", "EUR", 1, 1, 6, 1, 3000),
	row(report.Variant, "B", "USD", 3, 1, 9, 1, 400),
	row(report.Variant, "C", "USD", 1, 0, 0, 0, 0),

	row(report.Channel, "email", "USD", 5, 3, 4.5, 5, 1900),
	row(report.Channel, "sms", "EUR", 1, 1, 6, 1, 3000),
	row(report.Channel, "sms", "USD", 3, 1, 2, 3, 1500),

	row(report.Tone, "firm", "USD", 2, 1, 2, 3, 1500),
	row(report.Tone, "friendly", "EUR", 1, 1, 6, 1, 3000),
	row(report.Tone, "friendly", "USD", 6, 3, 4.5, 5, 1900),
	row(report.Tone, "urgent", "USD", 1, 1, 9, 1, 400),

	row(report.Incentive, "discount_percent", "EUR", 1, 1, 6, 1, 3000),
	row(report.Incentive, "discount_percent", "USD", 3, 2, 5.5, 4, 1900),
	row(report.Incentive, "extension_days", "USD", 1, 1, 4.5, 1, 0),
	row(report.Incentive, "none", "USD", 5, 2, 5.5, 4, 1900),
}

func TestBuild(t *testing.T) {
	st := fakes.MustStore(t)
	seed(t, st.Pool())
	got, err := report.Build(context.Background(), st.Pool(), since)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("got %d rows, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w report.Row
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestBuildSinceExcludesEarlierRuns(t *testing.T) {
	st := fakes.MustStore(t)
	seed(t, st.Pool())
	// One second earlier takes in the "old" run too: variant A gains a recovered run of 1h.
	got, err := report.Build(context.Background(), st.Pool(), since.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if w := row(report.Variant, "A", "USD", 4, 3, 2, 5, 1500); len(got) == 0 || got[0] != w {
		t.Fatalf("first row = %+v, want %+v", got[0], w)
	}
	// After every run started: nothing.
	got, err = report.Build(context.Background(), st.Pool(), since.AddDate(1, 0, 0))
	if err != nil || len(got) != 0 {
		t.Fatalf("Build(later) = %+v, %v; want no rows", got, err)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := report.WriteTable(&b, want); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 1+len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 1+len(want), out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "DIMENSION VALUE CURRENCY RUNS RECOVERED RATE MEDIAN HOURS MSGS/RECOVERY INCENTIVE COST" {
		t.Errorf("header = %q", lines[0])
	}
	// Channel email USD: 5 runs, 3 recovered, 60.0%, median 4.5 h, 5/3 messages, 19.00 USD.
	if f := strings.Join(strings.Fields(lines[5]), " "); f != "channel email USD 5 3 60.0% 4.5 1.67 19.00" {
		t.Errorf("line 5 = %q", f)
	}
	// 3.25 h prints as 3.2 (fmt rounds the exact binary value half to even).
	if f := strings.Join(strings.Fields(lines[1]), " "); f != "variant A USD 3 2 66.7% 3.2 2.00 15.00" {
		t.Errorf("line 1 = %q", f)
	}
	// Columns are aligned: every line has its RUNS column at the same offset.
	col := strings.Index(lines[0], "RUNS")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("RUNS column not aligned at %d in %q", col, l)
		}
	}
}

func TestWriteTableFromDatabase(t *testing.T) {
	st := fakes.MustStore(t)
	seed(t, st.Pool())
	rows, err := report.Build(context.Background(), st.Pool(), since)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := report.WriteTableSince(&b, rows, since); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "INCENTIVE COST") || !hasLine(b.String(), "incentive discount_percent EUR 1 1 100.0% 6.0 1.00 30.00") {
		t.Errorf("table:\n%s", b.String())
	}
}

func hasLine(out, fields string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == fields {
			return true
		}
	}
	return false
}

func TestWriteTableEmptyValues(t *testing.T) {
	var b bytes.Buffer
	rows := []report.Row{row(report.Variant, "", "JPY", 2, 1, 1, 1, 500), row(report.Variant, "A", "", 1, 0, 0, 0, 0)}
	if err := report.WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !hasLine(b.String(), "variant - JPY 2 1 50.0% 1.0 1.00 500") || !hasLine(b.String(), "variant A - 1 0 0.0% 0.0 0.00 0.00") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestWriteCSVRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := report.WriteCSV(&b, want); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(want) {
		t.Fatalf("%d records, want %d", len(recs), 1+len(want))
	}
	if strings.Join(recs[0], ",") != "dimension,value,currency,runs,recovered,recovery_rate,median_hours_to_recovery,messages_per_recovery,incentive_cost_minor" {
		t.Errorf("header = %v", recs[0])
	}
	for i, rec := range recs[1:] {
		got := report.Row{Dimension: report.Dimension(rec[0]), Value: rec[1], Currency: rec[2]}
		var errs []error
		atoi := func(s string) int { n, err := strconv.Atoi(s); errs = append(errs, err); return n }
		atof := func(s string) float64 { v, err := strconv.ParseFloat(s, 64); errs = append(errs, err); return v }
		got.Runs, got.Recovered = atoi(rec[3]), atoi(rec[4])
		got.RecoveryRate, got.MedianHoursToRecovery, got.MessagesPerRecovery = atof(rec[5]), atof(rec[6]), atof(rec[7])
		cost, err := strconv.ParseInt(rec[8], 10, 64)
		errs = append(errs, err)
		got.IncentiveCostMinor = cost
		for _, err := range errs {
			if err != nil {
				t.Fatalf("record %d %v: %v", i, rec, err)
			}
		}
		if got != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestEmptyDatabase(t *testing.T) {
	st := fakes.MustStore(t)
	rows, err := report.Build(context.Background(), st.Pool(), since)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Fatalf("rows = %+v, want none", rows)
	}
	var b bytes.Buffer
	if err := report.WriteTableSince(&b, rows, since); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "no runs whose window has closed since 2026-03-01T00:00:00Z\n" {
		t.Errorf("table = %q", got)
	}
	b.Reset()
	if err := report.WriteTable(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "no runs whose window has closed since ") {
		t.Errorf("table = %q", b.String())
	}
	b.Reset()
	if err := report.WriteCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	if b.String() != "dimension,value,currency,runs,recovered,recovery_rate,median_hours_to_recovery,messages_per_recovery,incentive_cost_minor\n" {
		t.Errorf("csv = %q", b.String())
	}
}
