package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/closedruns"
	"github.com/recoup-dunning/recoup/internal/customers"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/workflows"
)

// Support: a run's state and the actions on it, failure-spike incidents, customer profiles.
func addSupportCommands(root *cobra.Command, a *app) {
	var asJSON bool
	status := &cobra.Command{
		Use:     "status [flags] INVOICE_ID",
		GroupID: "support",
		Short:   "Print the dunning run's state",
		Example: "  starter status in_42\n  starter status --json in_42",
		Args:    exactArgs(1, "INVOICE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printStatus(cmd.Context(), a.d, args[0], asJSON, a.stdout)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the whole state as JSON")
	root.AddCommand(status)

	for _, s := range []struct{ name, short, example string }{
		{"pause", "Pause a run: send nothing until it is resumed", `pause in_42 --by alice --reason "customer called"`},
		{"resume", "Resume a paused run (later steps move back by the pause)", "resume in_42 --by alice"},
		{"cancel", "Cancel a run (--reason is required)", "cancel in_42 --reason refunded --by alice"},
		{"act-now", "Skip the wait: take the run's next step now", "act-now in_42 --by alice"},
	} {
		root.AddCommand(supportCommand(a, s.name+" [flags] INVOICE_ID", s.short, s.example, exactArgs(1, "INVOICE_ID")))
	}
	setChannel := supportCommand(a, "set-channel [flags] INVOICE_ID email|sms", "Change the channel of the run's next message",
		"set-channel in_42 sms --by alice", exactArgs(2, "INVOICE_ID and a channel, email or sms"))
	setChannel.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 1 {
			return []cobra.Completion{string(recoup.ChannelEmail), string(recoup.ChannelSMS)}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	root.AddCommand(setChannel)
	var note string
	resolve := &cobra.Command{
		Use:     "resolve [flags] INVOICE_ID --note TEXT",
		GroupID: "support",
		Short:   "Resolve a run that needs attention (a customer's reply): it goes on where it was",
		Long: `Resolve a run whose status is needs_attention: the customer's reply (a dispute, a wrong
person, a question, a reply not classified with confidence) was handled, and the run goes on
where it was (later steps move back by the time it waited). --note says how, and is recorded
in the run. To stop the run instead, cancel it.

The action runs as a Temporal Update: the run answers with its new status, or refuses (exit
status 2) when it does not need attention.`,
		Example: "  starter resolve in_42 --note \"called the customer: the charge is theirs\" --by alice",
		Args:    exactArgs(1, "INVOICE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(note) == "" {
				return wrongArgs(cmd, "--note is required: say how the customer's reply was handled")
			}
			by, _ := cmd.Flags().GetString("by")
			return supportAction(cmd.Context(), a.d, "resolve", args, by, note, a.stdout)
		},
	}
	resolve.Flags().StringVar(&note, "note", "", "how the customer's reply was handled (recorded in the run)")
	resolve.Flags().String("by", defaultActor(), "who is acting (recorded in the run)")
	root.AddCommand(resolve)

	root.AddCommand(incidentsCommand(a))
	root.AddCommand(approvalsCommand(a))

	var format string
	imp := &cobra.Command{
		Use:   "import [flags] FILE",
		Short: "Import customer profiles and consents (.csv or .jsonl)",
		Long: `Import customer profiles and consents from FILE (- for stdin): CSV with a header row or JSON
lines, told apart by the file extension or --format. A file with any invalid row is refused
whole, every problem named by line. A profile older than the stored one is kept as stored.`,
		Example: "  starter customers import customers.csv\n  starter customers import --format jsonl - < customers.txt",
		Args:    exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return importCustomers(cmd.Context(), a.d, args[0], format, a.stdin, a.stdout)
		},
	}
	imp.Flags().StringVar(&format, "format", "", "csv or jsonl (default: from the file extension)")
	_ = imp.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]cobra.Completion{"csv", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
	var consentFormat string
	con := &cobra.Command{
		Use:   "consent [flags] CUSTOMER_ID",
		Short: "Export a customer's consent ledger (JSON lines or a table)",
		Long: `Export CUSTOMER_ID's consent ledger, oldest first: every consent change and every opt-out,
with its channel, source (billing_event, snapshot, import, sendgrid, twilio, migration), the
time it was true at the source, the evidence (the event that said so) and whether it applied
(an older statement than the one in force is kept as evidence only).`,
		Example: "  starter customers consent cus_123\n  starter customers consent --format table cus_123",
		Args:    exactArgs(1, "CUSTOMER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exportConsent(cmd.Context(), a.d, args[0], consentFormat, a.stdout)
		},
	}
	con.Flags().StringVar(&consentFormat, "format", "jsonl", "jsonl or table")
	_ = con.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]cobra.Completion{"jsonl", "table"}, cobra.ShellCompDirectiveNoFileComp))
	cust := group(&cobra.Command{Use: "customers", GroupID: "support", Short: "Customer profiles: import, consent ledger"})
	cust.AddCommand(imp, con)
	root.AddCommand(cust)
}

// supportCommand is one support action on a run, run as a Temporal Update.
func supportCommand(a *app, use, short, example string, args cobra.PositionalArgs) *cobra.Command {
	var by, reason string
	cmd := &cobra.Command{
		Use:     use,
		GroupID: "support",
		Short:   short,
		Long: short + `.

The action runs as a Temporal Update: the run answers with its new status, or refuses (exit
status 2) when the action does not apply to it. --by and --reason are recorded in the run.`,
		Example: "  starter " + example,
		Args:    args,
		RunE: func(cmd *cobra.Command, args []string) error {
			return supportAction(cmd.Context(), a.d, cmd.Name(), args, by, reason, a.stdout)
		},
	}
	cmd.Flags().StringVar(&by, "by", defaultActor(), "who is acting (recorded in the run)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the run)")
	return cmd
}

// supportAction runs a support action on a run as a Temporal Update and prints the run's
// answer, or why it refused (exit status 2).
func supportAction(ctx context.Context, d *deps, action string, args []string, by, reason string, stdout io.Writer) error {
	var name string
	var arg any
	switch action {
	case "pause":
		name, arg = recoup.UpdatePause, recoup.Pause{By: by, Reason: reason}
	case "resume":
		name, arg = recoup.UpdateResume, recoup.Resume{By: by, Reason: reason}
	case "cancel":
		if reason == "" {
			return usageError{"cancel: --reason is required"}
		}
		name, arg = recoup.UpdateCancel, recoup.Cancel{By: by, Reason: reason}
	case "act-now":
		name, arg = recoup.UpdateActNow, recoup.ActNowRequest{By: by, Reason: reason}
	case "resolve":
		name, arg = recoup.UpdateResolve, recoup.Resolve{By: by, Note: reason}
	case "set-channel":
		ch := recoup.Channel(args[1])
		if !ch.Valid() {
			return usageError{fmt.Sprintf("set-channel: %q is not email or sms", ch)}
		}
		name, arg = recoup.UpdateSetChannel, recoup.SetChannelRequest{By: by, Reason: reason, Channel: ch}
	default:
		return fmt.Errorf("no support action %q", action)
	}
	return updateRun(ctx, d, action, args[0], name, arg, stdout)
}

// updateRun runs a support Update on an invoice's run and prints the run's answer, or why
// it refused (exit status 2).
func updateRun(ctx context.Context, d *deps, action, invoiceID, name string, arg any, stdout io.Writer) error {
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	wfID := recoup.WorkflowID(invoiceID)
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: wfID, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res recoup.ActionResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	var nf *serviceerror.NotFound
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &nf):
		if desc, derr := tc.DescribeWorkflowExecution(ctx, wfID, ""); derr == nil && desc.GetWorkflowExecutionInfo().GetCloseTime() != nil {
			return usageError{fmt.Sprintf("%s refused: the run has ended (%s); nothing more can be done on it",
				wfID, strings.ToLower(strings.TrimPrefix(desc.GetWorkflowExecutionInfo().GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")))}
		}
		return usageError{fmt.Sprintf("no dunning run %s", wfID)}
	case errors.As(err, &appErr):
		return usageError{fmt.Sprintf("%s refused: %s", wfID, appErr.Message())}
	case err != nil:
		// A run that has completed answers with a "workflow execution already completed" error.
		return fmt.Errorf("%s %s: %w", action, wfID, err)
	}
	fmt.Fprintf(stdout, "%s: %s (status %s)\n", wfID, res.Message, res.Status)
	return nil
}

func defaultActor() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// incidentsCommand lists failure-spike incidents (from PostgreSQL, where the detector records
// them); its subcommands apply an operator's action to one through the detector's update.
func incidentsCommand(a *app) *cobra.Command {
	var all bool
	var limit int
	var by, reason string
	inc := &cobra.Command{
		Use:     "incidents [flags]",
		GroupID: "support",
		Short:   "Failure-spike incidents: list open ones (--all: recent ones too), ack, release, false-alarm",
		Long: `List failure-spike incidents (open ones; --all also the ones that ended) with their evidence,
detection delay and held runs, and say how the detector judges cohorts. The subcommands apply
an operator's action to one incident through the detector; --by and --reason are recorded on
the incident.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return wrongArgs(cmd, fmt.Sprintf("unknown action %q (ack, release or false-alarm)", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listIncidents(cmd.Context(), a.d, all, limit, a.stdout)
		},
	}
	inc.Flags().BoolVar(&all, "all", false, "also list incidents that ended (cleared, false alarms)")
	inc.Flags().IntVar(&limit, "limit", 50, "at most this many incidents")
	inc.PersistentFlags().StringVar(&by, "by", defaultActor(), "who is acting (recorded on the incident)")
	inc.PersistentFlags().StringVar(&reason, "reason", "", "why (recorded on the incident)")
	inc.PersistentFlags().StringVar(&reason, "note", "", "the same as --reason")
	_ = inc.PersistentFlags().MarkHidden("note")
	for _, act := range []struct {
		use, action, short string
		aliases            []string
	}{
		{"ack", "acknowledge", "Acknowledge an open incident: someone is on it", []string{"acknowledge"}},
		{"release", "release", "Release the runs an incident holds", nil},
		{"false-alarm", "false_alarm", "Close an incident as a false alarm and release its runs", nil},
	} {
		inc.AddCommand(&cobra.Command{
			Use:     act.use + " [flags] INCIDENT_ID",
			Aliases: act.aliases,
			Short:   act.short,
			Example: "  starter incidents " + act.use + " inc-… --by oncall --reason \"looking\"",
			Args:    exactArgs(1, "INCIDENT_ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return incidentAction(cmd.Context(), a.d, act.use, act.action, args[0], by, reason, a.stdout)
			},
		})
	}
	return inc
}

// incidentAction applies an operator's action to an incident through the detector's update.
func incidentAction(ctx context.Context, d *deps, verb, action, id, by, reason string, stdout io.Writer) error {
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: recoup.DetectorWorkflowID, UpdateName: recoup.UpdateIncident, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{recoup.IncidentAction{IncidentID: id, Action: action, By: by, Note: reason}},
	})
	var inc spike.Incident
	if err == nil {
		err = h.Get(ctx, &inc)
	}
	var nf *serviceerror.NotFound
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &nf):
		return usageError{"the failure-spike detector is not running (it starts with the first payment.failed)"}
	case errors.As(err, &appErr):
		return usageError{"refused: " + appErr.Message()}
	case err != nil:
		return fmt.Errorf("incidents %s %s: %w", verb, id, err)
	}
	fmt.Fprintf(stdout, "%s: %s (%s) %s\n", inc.ID, inc.Status, inc.Cohort, inc.Note)
	return nil
}

// modes explains the detector's modes to operators.
var modes = map[string]string{
	"rates":  "rates: payment volume is reported (payment.succeeded); each cohort is judged by its failure rate",
	"shares": "shares: no payment volume reported; each cohort is judged by its share of all failures, so a traffic-wide rise (renewal day) is not an incident, but a cohort with nearly all failures (a single gateway) is not judged: send payment.succeeded events to watch it",
	"counts": "counts: each cohort against its own usual count (a detector run from before rates and shares)",
}

// detectorMode asks the running detector how it judges cohorts (best effort: the list comes
// from PostgreSQL either way).
func detectorMode(ctx context.Context, d *deps) string {
	tc, err := d.temporal()
	if err != nil {
		return "unknown (Temporal is not reachable)"
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := tc.QueryWorkflow(qctx, recoup.DetectorWorkflowID, "", recoup.QueryIncidents)
	var st workflows.DetectorStatus
	if err == nil {
		err = v.Get(&st)
	}
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return "not running (it starts with the first payment.failed)"
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case modes[st.Mode] == "":
		return st.Mode
	}
	return modes[st.Mode]
}

func listIncidents(ctx context.Context, d *deps, all bool, limit int, stdout io.Writer) error {
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	defer func() { fmt.Fprintln(stdout, "detector mode:", detectorMode(ctx, d)) }()
	incs, held, err := st.Incidents(ctx, all, limit)
	if err != nil {
		return err
	}
	if len(incs) == 0 {
		if all {
			fmt.Fprintln(stdout, "no incidents")
		} else {
			fmt.Fprintln(stdout, "no open incidents (--all lists the ones that ended)")
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSEVERITY\tCOHORT\tOPENED\tDETECTED AFTER\tHELD RUNS\tEVIDENCE")
	for _, in := range incs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.ID, in.Status, in.Severity, in.Cohort,
			in.OpenedAt.UTC().Format(time.RFC3339), in.OpenedAt.Sub(in.OnsetAt).Round(time.Second), held[in.ID], in.Evidence)
	}
	return tw.Flush()
}

func importCustomers(ctx context.Context, d *deps, path, format string, stdin io.Reader, stdout io.Writer) error {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".jsonl", ".ndjson", ".json":
			format = "jsonl"
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
	cs, err := customers.Parse(r, format, time.Now().UTC())
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

// closedOutcome is how a run Temporal closed outside the workflow really ended (terminated,
// reset, timed out, failed): its DunningStatus and its own state still say what it was doing.
type closedOutcome struct {
	Outcome        string    `json:"outcome"` // terminated | timed_out | failed | canceled | completed
	By             string    `json:"by,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	ClosedAt       time.Time `json:"closed_at"`
	RecordedStatus string    `json:"recorded_status,omitempty"` // what the run last said of itself
	// Recorded: the worker's reconciler recorded it in PostgreSQL (run_outcomes); otherwise
	// it was read from the close event just now.
	Recorded bool `json:"recorded"`
}

// statusJSON is what `status --json` prints: the run's state, and for a run closed outside
// the workflow its true outcome.
type statusJSON struct {
	recoup.State
	Closed *closedOutcome `json:"closed,omitempty"`
}

func printStatus(ctx context.Context, d *deps, invoiceID string, asJSON bool, stdout io.Writer) error {
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	wfID := recoup.WorkflowID(invoiceID)
	desc, err := tc.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no dunning run %s", wfID)
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", wfID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	running := info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	s, qerr := queryState(ctx, tc, wfID, running)
	if qerr != nil && running {
		return fmt.Errorf("query %s: %w", wfID, qerr)
	}
	out := statusJSON{State: s}
	if !running {
		// A closed run has no next step, whatever its state last said.
		out.NextAction, out.NextActionAt = "", time.Time{}
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || !s.Status.Ended() {
			if out.Closed, err = closedRun(ctx, d, tc, wfID, info.GetExecution().GetRunId(), string(s.Status)); err != nil {
				return err
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if qerr != nil {
		fmt.Fprintf(stdout, "(the run's own state could not be read: %v)\n", qerr)
	}
	PrintState(stdout, wfID, out.State, out.Closed, time.Now())
	return nil
}

// queryState asks the run for its state; a closed run is answered by a worker replaying
// it, so the question is bounded in time.
func queryState(ctx context.Context, tc client.Client, wfID string, running bool) (recoup.State, error) {
	var s recoup.State
	if !running {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	v, err := tc.QueryWorkflow(ctx, wfID, "", recoup.QueryStatus)
	if err == nil {
		err = v.Get(&s)
	}
	return s, err
}

// closedRun is the true outcome of a run Temporal closed outside the workflow: as the
// worker's reconciler recorded it in PostgreSQL, or, not recorded yet (or PostgreSQL not
// reachable), from the close event.
func closedRun(ctx context.Context, d *deps, tc client.Client, wfID, runID, state string) (*closedOutcome, error) {
	if st, err := d.store(ctx); err == nil {
		if o, ok, err := st.FindRunOutcome(ctx, wfID, runID); err == nil && ok {
			return &closedOutcome{Outcome: o.Outcome, By: o.ClosedBy, Reason: o.Reason, ClosedAt: o.ClosedAt,
				RecordedStatus: o.RecordedStatus, Recorded: true}, nil
		}
	}
	o, err := closedruns.CloseOutcome(ctx, tc, wfID, runID)
	if err != nil {
		return nil, err
	}
	return &closedOutcome{Outcome: o.Outcome, By: o.ClosedBy, Reason: o.Reason, ClosedAt: o.ClosedAt, RecordedStatus: state}, nil
}

// PrintState writes a run's state for people. A run closed outside the workflow (closed)
// shows its true outcome; no closed run shows a next step, and a next step that is due is
// said to be overdue, never given as a time in the past.
func PrintState(w io.Writer, wfID string, s recoup.State, closed *closedOutcome, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", wfID)
	if closed != nil {
		printClosed(tw, closed)
	} else {
		fmt.Fprintf(tw, "status\t%s %s\n", s.Status, paren(s.Reason))
	}
	fmt.Fprintf(tw, "invoice\t%s (%d %s minor units), customer %s\n", s.InvoiceID, s.AmountMinor, s.Currency, s.CustomerID)
	fmt.Fprintf(tw, "step\t%d of %d\n", s.Step, s.TotalSteps)
	if next := nextLine(s, now); next != "" && closed == nil && !s.Status.Ended() {
		fmt.Fprintf(tw, "next\t%s\n", next)
	}
	if len(s.OptedOut) > 0 {
		fmt.Fprintf(tw, "opted out\t%v\n", s.OptedOut)
	}
	if !s.PausedUntil.IsZero() && closed == nil {
		fmt.Fprintf(tw, "paused until\t%s (a reply)\n", s.PausedUntil.Format(time.RFC3339))
	}
	if r := retryAdviceLine(s, now); r != "" && closed == nil {
		fmt.Fprintf(tw, "retry advice\t%s\n", r)
	}
	if h := holdoutLine(s); h != "" {
		fmt.Fprintf(tw, "holdout\t%s\n", h)
	}
	tw.Flush()
	printRecords(w, s)
}

// holdoutLine says which arm of the holdout the run is in (policy.yaml's holdout section),
// from its newest decision: "" when the holdout was off or nothing was decided yet.
func holdoutLine(s recoup.State) string {
	if len(s.Decisions) == 0 {
		return ""
	}
	switch d := s.Decisions[len(s.Decisions)-1]; d.Holdout {
	case "control":
		return "control arm: the holdout's control treatment (no model, no incentive; see the decider line)"
	case "":
		return ""
	default:
		return d.Holdout + " arm"
	}
}

// retryAdviceLine is the newest retry advice given to billing (State.Retry), for an open
// run: when (never a time in the past as if it were ahead), the class, the budget left, how
// billing was told and why.
func retryAdviceLine(s recoup.State, now time.Time) string {
	if s.Retry == nil || s.Retry.Advice == nil || s.Status.Ended() {
		return ""
	}
	adv := s.Retry.Advice
	what := "do not retry"
	switch {
	case adv.DoNotRetry:
	case adv.RetryAt.After(now):
		what = fmt.Sprintf("retry at %s (%d attempts left)", adv.RetryAt.Format(time.RFC3339), adv.Remaining)
	default:
		what = fmt.Sprintf("was advised for %s, now past", adv.RetryAt.Format(time.RFC3339))
	}
	line := fmt.Sprintf("%s · %s · billing %s · %s", what, adv.Class, adv.Delivery, adv.Reason)
	if adv.Executed != "" {
		line += " · Stripe: " + adv.Executed
	}
	return line
}

// printClosed writes the true outcome of a run closed outside the workflow.
func printClosed(tw io.Writer, c *closedOutcome) {
	line := c.Outcome
	if c.By != "" {
		line += " by " + c.By
	}
	fmt.Fprintf(tw, "status\t%s at %s %s\n", line, c.ClosedAt.UTC().Format(time.RFC3339), paren(c.Reason))
	if c.RecordedStatus != "" {
		fmt.Fprintf(tw, "\tclosed outside the workflow: it had recorded itself %s (DunningStatus keeps that); it sends nothing more\n", c.RecordedStatus)
	}
	if c.Recorded {
		fmt.Fprintf(tw, "\trecorded in PostgreSQL (run_outcomes) by the worker\n")
	} else {
		fmt.Fprintf(tw, "\tread from Temporal's close event; the worker records it in PostgreSQL within a minute\n")
	}
}

// nextLine is the run's next step as it will really happen: no time while it is paused, and
// "overdue" rather than a time in the past.
func nextLine(s recoup.State, now time.Time) string {
	switch {
	case s.NextAction == "":
		return ""
	case s.Status == recoup.StatusPaused && s.PausedUntil.IsZero():
		return s.NextAction + ", once the run is resumed"
	case s.Status == recoup.StatusNeedsAttention:
		return s.NextAction + ", once support resolves or resumes the run"
	case s.Status == recoup.StatusPaused:
		return s.NextAction + ", after the pause ends at " + s.PausedUntil.Format(time.RFC3339)
	case s.NextActionAt.IsZero():
		return s.NextAction
	case s.NextActionAt.Before(now):
		return fmt.Sprintf("%s, due since %s: overdue (is a worker running?)", s.NextAction, s.NextActionAt.Format(time.RFC3339))
	}
	return s.NextAction + " at " + s.NextActionAt.Format(time.RFC3339)
}

// declineNote names a decision's decline class ("": decided before classes existed).
func declineNote(c recoup.DeclineClass) string {
	if c == "" {
		return ""
	}
	return " · decline " + string(c)
}

// printRecords writes the run's replies, decisions, messages and signals.
func printRecords(w io.Writer, s recoup.State) {
	for _, r := range s.Replies {
		fmt.Fprintf(w, "  reply %s by %s at %s: %q\n    → %s (%.2f, by %s) → %s %s\n", r.EventID, r.Channel,
			r.ReceivedAt.Format(time.RFC3339), r.Text, r.Intent, r.Confidence, r.DecidedBy, r.Action, paren(r.Note))
	}
	for _, dec := range s.Decisions {
		fmt.Fprintf(w, "  decision step %d: %s · %s · incentive %s %d · by %s%s\n", dec.Step, dec.Channel, dec.Tone,
			dec.Incentive.Kind, dec.Incentive.Value, dec.DecidedBy, declineNote(dec.DeclineClass))
		if dec.DeciderNote != "" {
			fmt.Fprintf(w, "    decider: %s\n", dec.DeciderNote)
		}
		if len(dec.Violations) > 0 {
			fmt.Fprintf(w, "    guardrails: %s\n", strings.Join(dec.Violations, "; "))
		}
		fmt.Fprintf(w, "    why: %s\n", dec.Rationale)
	}
	if p := s.Approval; p != nil {
		fmt.Fprintf(w, "  held for approval step %d since %s (%s): %s; %s at %s\n", p.Step, p.Since.Format(time.RFC3339),
			strings.Join(p.Rules, "; "), workflows.DecisionLine(p.Held), p.OnTimeout, p.Until.Format(time.RFC3339))
	}
	for _, r := range s.Approvals {
		fmt.Fprintf(w, "  approval step %d (%s): %s by %s %s\n", r.Step, strings.Join(r.Rules, "; "), r.Outcome, r.By, paren(r.Reason))
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

// consentLine is one consent ledger row as `customers consent` exports it.
type consentLine struct {
	CustomerID string    `json:"customer_id"`
	Channel    string    `json:"channel"`
	Consent    bool      `json:"consent"`
	Source     string    `json:"source"`
	Evidence   string    `json:"evidence_event_id,omitempty"`
	At         time.Time `json:"at"`
	Applied    bool      `json:"applied"`
}

func exportConsent(ctx context.Context, d *deps, customerID, format string, stdout io.Writer) error {
	if format != "jsonl" && format != "table" {
		return usageError{fmt.Sprintf("customers consent: --format %q is not jsonl or table", format)}
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	ledger, err := st.ConsentLedger(ctx, customerID)
	if err != nil {
		return err
	}
	if format == "jsonl" {
		enc := json.NewEncoder(stdout)
		for _, c := range ledger {
			if err := enc.Encode(consentLine{CustomerID: customerID, Channel: c.Channel, Consent: c.Consent, Source: c.Source,
				Evidence: c.EvidenceEventID, At: c.At.UTC(), Applied: c.Applied}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ledger) == 0 {
		fmt.Fprintf(stdout, "no consent statements recorded for %s\n", customerID)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tCHANNEL\tCONSENT\tSOURCE\tAPPLIED\tEVIDENCE")
	for _, c := range ledger {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%v\t%s\n", c.At.UTC().Format(time.RFC3339), c.Channel, c.Consent, c.Source, c.Applied, c.EvidenceEventID)
	}
	return tw.Flush()
}

// approvalsCommand lists the runs holding a message for approval (a visibility query on
// DunningStatus) and approves, rejects or edits one held message through the run's Updates.
func approvalsCommand(a *app) *cobra.Command {
	var limit int
	var by, reason string
	cmd := &cobra.Command{
		Use:     "approvals [flags]",
		GroupID: "support",
		Short:   "Messages held for approval: list them, approve, reject or edit one",
		Long: `List the runs whose message waits for a human (status awaiting_approval: a rule of the
policy's approval section matched; or paused, or needing attention, while holding one: the
approval's clock stands still meanwhile), with the rules that asked, the message held and when
the policy's on_timeout applies. The subcommands answer one held message through the run's
Updates: approve sends it, reject sends nothing for that step (--reason required), edit
changes it within the same guardrails as the model's answer and sends it. --by and --reason
are recorded in the run (the status query's approvals and actions).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return wrongArgs(cmd, fmt.Sprintf("unknown action %q (approve, reject or edit)", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listApprovals(cmd.Context(), a.d, limit, a.stdout)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many runs")
	cmd.PersistentFlags().StringVar(&by, "by", defaultActor(), "who is acting (recorded in the run)")
	cmd.PersistentFlags().StringVar(&reason, "reason", "", "why (recorded in the run)")
	cmd.AddCommand(&cobra.Command{
		Use: "approve [flags] INVOICE_ID", Short: "Send the held message as it stands",
		Example: "  starter approvals approve in_42 --by alice", Args: exactArgs(1, "INVOICE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateRun(cmd.Context(), a.d, "approve", args[0], recoup.UpdateApprove, recoup.Approval{By: by, Reason: reason}, a.stdout)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "reject [flags] INVOICE_ID --reason TEXT", Short: "Send nothing for the held step",
		Example: "  starter approvals reject in_42 --by alice --reason \"key account: calling them\"", Args: exactArgs(1, "INVOICE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return wrongArgs(cmd, "--reason is required: say why nothing is sent")
			}
			return updateRun(cmd.Context(), a.d, "reject", args[0], recoup.UpdateReject, recoup.Approval{By: by, Reason: reason}, a.stdout)
		},
	})
	cmd.AddCommand(editCommand(a, &by, &reason))
	return cmd
}

// editCommand changes the held message within the guardrails and sends it.
func editCommand(a *app, by, reason *string) *cobra.Command {
	var e recoup.ApprovalEdit
	var incentive, channel string
	cmd := &cobra.Command{
		Use:   "edit [flags] INVOICE_ID",
		Short: "Change the held message (tone, incentive, channel, text) within the guardrails, then send it",
		Long: `Change the held message and send it. Only the flags given change; the result must pass the
same guardrails as the model's answer (tones, the customer's channels, the plan's incentive
caps and yearly budget, lengths, guardrails.yaml): the run refuses an edit outside them and
the message stays held.`,
		Example: "  starter approvals edit in_42 --by alice --incentive extension:7 --tone firm\n" +
			"  starter approvals edit in_42 --by alice --incentive none --channel email",
		Args: exactArgs(1, "INVOICE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if incentive != "" {
				inc, err := parseIncentive(incentive)
				if err != nil {
					return wrongArgs(cmd, "--incentive: "+err.Error())
				}
				e.Incentive = &inc
			}
			if channel != "" {
				if e.Channel = recoup.Channel(channel); !e.Channel.Valid() {
					return wrongArgs(cmd, fmt.Sprintf("--channel: %q is not email or sms", channel))
				}
			}
			if e.Tone == "" && e.Incentive == nil && e.Channel == "" && e.Subject == "" && e.Message == "" {
				return wrongArgs(cmd, "nothing to edit: give --tone, --incentive, --channel, --subject or --message")
			}
			e.By, e.Reason = *by, *reason
			return updateRun(cmd.Context(), a.d, "edit", args[0], recoup.UpdateEdit, e, a.stdout)
		},
	}
	cmd.Flags().StringVar(&incentive, "incentive", "", "none, discount:PERCENT or extension:DAYS")
	cmd.Flags().StringVar(&e.Tone, "tone", "", "one of the policy's tones")
	cmd.Flags().StringVar(&channel, "channel", "", "email or sms")
	cmd.Flags().StringVar(&e.Subject, "subject", "", "the email's subject")
	cmd.Flags().StringVar(&e.Message, "message", "", "the message text (the templates add greeting, amount, link and footer)")
	return cmd
}

// parseIncentive reads none, discount:10 or extension:7.
func parseIncentive(s string) (recoup.Incentive, error) {
	if s == "none" {
		return recoup.Incentive{Kind: recoup.IncentiveNone}, nil
	}
	kind, value, _ := strings.Cut(s, ":")
	n, err := strconv.Atoi(value)
	switch {
	case kind != "discount" && kind != "extension":
		return recoup.Incentive{}, fmt.Errorf("%q is not none, discount:PERCENT or extension:DAYS", s)
	case err != nil || n < 1:
		return recoup.Incentive{}, fmt.Errorf("%q: the value after %s: must be a whole number of at least 1", s, kind)
	case kind == "discount":
		return recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: n}, nil
	}
	return recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: n}, nil
}

// listApprovals prints the runs holding a message for approval, newest first: those
// awaiting approval, and those paused (or needing attention) while they hold one — the
// approval's clock stops while paused, but the message still waits for an answer. A paused
// run is asked (the status query) whether it holds a message.
func listApprovals(ctx context.Context, d *deps, limit int, stdout io.Writer) error {
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s IN ('%s', '%s', '%s')",
		recoup.WorkflowType, recoup.SearchAttrDunningStatus, recoup.StatusAwaitingApproval, recoup.StatusPaused, recoup.StatusNeedsAttention)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INVOICE\tSTATUS\tSTEP\tRULES\tHELD\tSINCE\tTHEN (at)")
	n := 0
	var token []byte
	for n < limit {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: int32(limit), NextPageToken: token})
		if err != nil {
			return fmt.Errorf("list runs awaiting approval: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			if n >= limit {
				break
			}
			v, err := tc.QueryWorkflow(ctx, ex.GetExecution().GetWorkflowId(), "", recoup.QueryStatus)
			var st recoup.State
			if err == nil {
				err = v.Get(&st)
			}
			if err != nil || st.Approval == nil {
				continue // answered since the list was read, or paused without a held message
			}
			p := st.Approval
			then := fmt.Sprintf("%s (%s)", p.OnTimeout, p.Until.UTC().Format(time.RFC3339))
			if st.Status != recoup.StatusAwaitingApproval {
				then = fmt.Sprintf("%s (%s plus the time %s: its clock stands meanwhile)", p.OnTimeout, p.Until.UTC().Format(time.RFC3339), st.Status)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", st.InvoiceID, st.Status, p.Step, strings.Join(p.Rules, "; "),
				workflows.DecisionLine(p.Held), p.Since.UTC().Format(time.RFC3339), then)
			n++
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no run is awaiting approval")
		return nil
	}
	return tw.Flush()
}
