package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/workflows"
)

const incidentsUsage = `usage: starter incidents [--all] [--limit N]
       starter incidents ack|release|false-alarm INCIDENT_ID [--by NAME] [--note TEXT]`

// cmdIncidents lists failure-spike incidents (from PostgreSQL, where the detector records
// them) or applies an operator's action to one through the detector's update.
func cmdIncidents(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("incidents", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.Bool("all", false, "also list incidents that ended (cleared, false alarms)")
	limit := fs.Int("limit", 50, "at most this many incidents")
	by := fs.String("by", defaultActor(), "who is acting (recorded on the incident)")
	note := fs.String("note", "", "why (recorded on the incident)")
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return usageError{incidentsUsage}
		}
		args = fs.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	if len(positional) == 0 {
		return listIncidents(ctx, d, *all, *limit, stdout)
	}
	action := map[string]string{"ack": "acknowledge", "acknowledge": "acknowledge", "release": "release",
		"false-alarm": "false_alarm"}[positional[0]]
	if action == "" || len(positional) != 2 {
		return usageError{incidentsUsage}
	}
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: recoup.DetectorWorkflowID, UpdateName: recoup.UpdateIncident, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{recoup.IncidentAction{IncidentID: positional[1], Action: action, By: *by, Note: *note}},
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
		return fmt.Errorf("incidents %s %s: %w", positional[0], positional[1], err)
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
