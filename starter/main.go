// Command starter is Recoup's event ingress and operator tool.
//
//	starter event [FILE|-]              validate, record and deliver one event (JSON) from a file or stdin
//	starter status [--json] INVOICE_ID  print the dunning run's state
//	starter serve                       HTTP ingress: POST /v1/events, POST /v1/stripe, /healthz, /readyz, /metrics
//	starter consume                     consume native events from Kafka
//	starter relay                       deliver every recorded event not yet delivered
//	starter customers import FILE       import profiles and consents (.csv or .jsonl; --format to force)
//	starter seed                        load the demo data set
//	starter migrate                     apply the database migrations
//	starter pause|resume|cancel|act-now INVOICE_ID [--by NAME] [--reason TEXT]   support actions (Updates)
//	starter set-channel INVOICE_ID email|sms [--by NAME] [--reason TEXT]
//	starter search-attributes           print the search attributes to register
//
// Configuration comes from the environment (see README.md). Exit status: 0 on success,
// 1 on a runtime failure, 2 on bad input or usage (nothing was recorded or started).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/customers"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

const usage = `usage:
  starter event [FILE|-]              validate, record and deliver one event (JSON)
  starter status [--json] INVOICE_ID  print the dunning run's state
  starter serve                       HTTP ingress (INGRESS_ADDR, WEBHOOK_SECRETS, STRIPE_WEBHOOK_SECRETS)
  starter consume                     consume events from Kafka (KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP)
  starter relay                       deliver recorded events not yet delivered
  starter bench [--rate N] [--count N] ingress load generator (see BENCHMARKS.md)
  starter customers import [--format csv|jsonl] FILE
  starter seed                        load the demo data set
  starter migrate                     apply the database migrations
  starter pause|resume|cancel|act-now INVOICE_ID [--by NAME] [--reason TEXT]
  starter set-channel INVOICE_ID email|sms [--by NAME] [--reason TEXT]
  starter incidents [--all]           failure-spike incidents: open ones, or all recent
  starter incidents ack|release|false-alarm INCIDENT_ID [--by NAME] [--note TEXT]
  starter search-attributes           the search attributes to register (Name=Type)
  starter codec-server                payload codec server for the Web UI (RECOUP_CODEC_KEYS, CODEC_AUTH_TOKEN)
  starter setup                       apply migrations and register the search attributes
  starter prompts lint [DIR]          check a prompt set (file:line: problem)
  starter prompts preview --customer ID|FIXTURE [--step N] [--variant V] [--dir DIR]
  starter report [--days N] [--csv]   recovery by prompt variant, channel, tone and incentive
  starter probe URL                   health check: exit 0 when URL answers 2xx`

// usageError is bad input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is 0 on success, 2 for bad input (nothing was recorded or started), 1 otherwise.
func exitCode(err error) int {
	var ue usageError
	var ve *events.ValidationError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) || errors.As(err, &ve) || errors.Is(err, postgres.ErrEventConflict):
		return 2
	}
	return 1
}

// deps are opened lazily: validation errors need neither PostgreSQL nor Temporal.
type deps struct {
	cfg config.Config
	st  *postgres.Store
	tc  client.Client
}

func (d *deps) store(ctx context.Context) (*postgres.Store, error) {
	if d.st != nil {
		return d.st, nil
	}
	st, err := postgres.Open(ctx, d.cfg.DatabaseURL, postgres.Options{MaxClockSkew: d.cfg.MaxClockSkew})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	d.st = st
	return st, nil
}

func (d *deps) temporal() (client.Client, error) {
	if d.tc != nil {
		return d.tc, nil
	}
	tc, err := d.cfg.DialTemporal(d.cfg.Logger())
	if err != nil {
		return nil, err
	}
	d.tc = tc
	return tc, nil
}

func (d *deps) close() {
	if d.tc != nil {
		d.tc.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	d := &deps{cfg: cfg}
	defer d.close()
	switch cmd, rest := args[0], args[1:]; cmd {
	case "event":
		return cmdEvent(ctx, d, rest, stdin, stdout)
	case "status":
		return cmdStatus(ctx, d, rest, stdout)
	case "serve":
		return cmdServe(ctx, d, rest, stdout)
	case "consume":
		return cmdConsume(ctx, d, rest, stdout)
	case "bench":
		return cmdBench(ctx, d, rest, stdout)
	case "relay":
		return cmdRelay(ctx, d, rest, stdout)
	case "customers":
		return cmdCustomers(ctx, d, rest, stdin, stdout)
	case "seed":
		st, err := d.store(ctx)
		if err != nil {
			return err
		}
		n, err := customers.Seed(ctx, st, time.Now().UTC().Truncate(24*time.Hour))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d demo customers (cus_demo_01 … cus_demo_%02d) with a year of payment history\n", n, n)
		return nil
	case "migrate":
		st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		applied, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrations applied: %d new %v\n", len(applied), applied)
		return nil
	case "prompts":
		return cmdPrompts(ctx, d, rest, stdout)
	case "report":
		return cmdReport(ctx, d, rest, stdout)
	case "setup":
		return cmdSetup(ctx, d, rest, stdout)
	case "probe":
		return cmdProbe(ctx, rest)
	case "codec-server":
		return cmdCodecServer(ctx, d, rest, stdout)
	case "pause", "resume", "cancel", "act-now", "set-channel":
		return cmdSupport(ctx, d, cmd, rest, stdout)
	case "incidents":
		return cmdIncidents(ctx, d, rest, stdout)
	case "search-attributes":
		// One "Name=Type" per line, for `temporal server start-dev --search-attribute`.
		for _, sa := range recoup.SearchAttributes {
			fmt.Fprintf(stdout, "%s=%s\n", sa.Name, sa.Type)
		}
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, "recoup starter", version)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
	}
}

func readInput(args []string, stdin io.Reader) ([]byte, error) {
	if len(args) > 1 {
		return nil, usageError{"event: give one FILE or - for stdin"}
	}
	var r io.Reader = stdin
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, usageError{fmt.Sprintf("event: %v", err)}
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, events.MaxSize+1))
	if err != nil {
		return nil, err
	}
	return b, nil
}

func cmdEvent(ctx context.Context, d *deps, args []string, stdin io.Reader, stdout io.Writer) error {
	raw, err := readInput(args, stdin)
	if err != nil {
		return err
	}
	if _, err := events.Decode(raw); err != nil { // reject before connecting to anything
		return err
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	// A lazy client: the event is recorded even when Temporal is unreachable, and then
	// delivered by `starter relay` or a running `starter serve`.
	if d.tc == nil {
		if d.tc, err = d.cfg.LazyTemporal(d.cfg.Logger()); err != nil {
			return err
		}
	}
	in := &eventlog.Ingestor{Store: st, Temporal: d.tc, Logger: d.cfg.Logger()}
	res, err := in.Accept(ctx, raw, "cli")
	if err != nil {
		if res.EventID != "" && !errors.Is(err, postgres.ErrEventConflict) {
			return fmt.Errorf("%w\nthe event is recorded; `starter relay` (or a running `starter serve`) delivers it once Temporal is reachable", err)
		}
		return err
	}
	dup := ""
	if res.Duplicate {
		dup = " (duplicate event id: already recorded)"
	}
	fmt.Fprintf(stdout, "%s %s → %s: %s%s\n", res.Type, res.EventID, res.WorkflowID, res.Note, dup)
	return nil
}

func cmdRelay(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"relay takes no arguments"}
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	in := &eventlog.Ingestor{Store: st, Temporal: tc, Logger: d.cfg.Logger()}
	total := 0
	for {
		n, err := in.DeliverPending(ctx, 100, nil)
		total += n
		if err != nil {
			return fmt.Errorf("delivered %d events, then: %w", total, err)
		}
		if n < 100 {
			break
		}
	}
	fmt.Fprintf(stdout, "delivered %d pending events\n", total)
	return nil
}

func cmdCustomers(ctx context.Context, d *deps, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return usageError{"usage: starter customers import [--format csv|jsonl] FILE"}
	}
	fs := flag.NewFlagSet("customers import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "", "csv or jsonl (default: from the file extension)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		return usageError{"usage: starter customers import [--format csv|jsonl] FILE"}
	}
	path := fs.Arg(0)
	if *format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			*format = "csv"
		case ".jsonl", ".ndjson", ".json":
			*format = "jsonl"
		default:
			return usageError{fmt.Sprintf("customers import: cannot tell the format of %q; use --format csv or --format jsonl", path)}
		}
	}
	var r io.Reader = stdin
	if path != "-" {
		b, err := os.ReadFile(path)
		if err != nil {
			return usageError{fmt.Sprintf("customers import: %v", err)}
		}
		r = bytes.NewReader(b)
	}
	cs, err := customers.Parse(r, *format, time.Now().UTC())
	if err != nil {
		return usageError{fmt.Sprintf("customers import: nothing imported:\n%v", err)}
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	n, err := customers.Import(ctx, st, cs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d profiles (%d changed; older than stored ones are kept as stored)\n", len(cs), n)
	return nil
}

func cmdStatus(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the whole state as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return usageError{"usage: starter status [--json] INVOICE_ID"}
	}
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	wfID := recoup.WorkflowID(fs.Arg(0))
	v, err := tc.QueryWorkflow(ctx, wfID, "", recoup.QueryStatus)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no dunning run %s", wfID)
	}
	if err != nil {
		return fmt.Errorf("query %s: %w", wfID, err)
	}
	var s recoup.State
	if err := v.Get(&s); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	PrintState(stdout, wfID, s)
	return nil
}

// PrintState writes a run's state for people.
func PrintState(w io.Writer, wfID string, s recoup.State) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", wfID)
	fmt.Fprintf(tw, "status\t%s %s\n", s.Status, paren(s.Reason))
	fmt.Fprintf(tw, "invoice\t%s (%d %s minor units), customer %s\n", s.InvoiceID, s.AmountMinor, s.Currency, s.CustomerID)
	fmt.Fprintf(tw, "step\t%d of %d\n", s.Step, s.TotalSteps)
	if s.NextAction != "" {
		fmt.Fprintf(tw, "next\t%s at %s\n", s.NextAction, s.NextActionAt.Format(time.RFC3339))
	}
	if len(s.OptedOut) > 0 {
		fmt.Fprintf(tw, "opted out\t%v\n", s.OptedOut)
	}
	tw.Flush()
	for _, dec := range s.Decisions {
		fmt.Fprintf(w, "  decision step %d: %s · %s · incentive %s %d · by %s %s\n    why: %s\n",
			dec.Step, dec.Channel, dec.Tone, dec.Incentive.Kind, dec.Incentive.Value, dec.DecidedBy,
			paren(strings.Join(dec.Violations, "; ")), dec.Rationale)
	}
	for _, m := range s.Messages {
		fmt.Fprintf(w, "  message step %d: %s %s %s %s\n", m.Step, m.Channel, m.Delivery, m.ProviderMessageID, paren(m.Error))
	}
	for _, sig := range s.Signals {
		applied := "applied"
		if !sig.Applied {
			applied = "ignored"
		}
		fmt.Fprintf(w, "  signal %s %s: %s %s\n", sig.Name, sig.EventID, applied, paren(sig.Note))
	}
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}
