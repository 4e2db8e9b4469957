package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
)

const supportUsage = `usage: starter pause|resume|cancel|act-now INVOICE_ID [--by NAME] [--reason TEXT]
       starter set-channel INVOICE_ID email|sms [--by NAME] [--reason TEXT]`

// cmdSupport runs a support action on a run as a Temporal Update and prints the run's answer,
// or why it refused (exit status 2).
func cmdSupport(ctx context.Context, d *deps, action string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	by := fs.String("by", defaultActor(), "who is acting (recorded in the run)")
	reason := fs.String("reason", "", "why (recorded in the run)")
	var positional []string
	for len(args) > 0 { // flags may come before or after the positional arguments
		if err := fs.Parse(args); err != nil {
			return usageError{supportUsage}
		}
		args = fs.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	want := 1
	if action == "set-channel" {
		want = 2
	}
	if len(positional) != want {
		return usageError{supportUsage}
	}
	var name string
	var arg any
	switch action {
	case "pause":
		name, arg = recoup.UpdatePause, recoup.Pause{By: *by, Reason: *reason}
	case "resume":
		name, arg = recoup.UpdateResume, recoup.Resume{By: *by, Reason: *reason}
	case "cancel":
		if *reason == "" {
			return usageError{"cancel: --reason is required"}
		}
		name, arg = recoup.UpdateCancel, recoup.Cancel{By: *by, Reason: *reason}
	case "act-now":
		name, arg = recoup.UpdateActNow, recoup.ActNowRequest{By: *by, Reason: *reason}
	case "set-channel":
		ch := recoup.Channel(positional[1])
		if !ch.Valid() {
			return usageError{fmt.Sprintf("set-channel: %q is not email or sms", ch)}
		}
		name, arg = recoup.UpdateSetChannel, recoup.SetChannelRequest{By: *by, Reason: *reason, Channel: ch}
	}
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	wfID := recoup.WorkflowID(positional[0])
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
