package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/recoup-dunning/recoup"
)

// cmdSetup prepares a deployment: applies the database migrations and registers Recoup's
// search attributes on the Temporal namespace (those already there are left alone).
func cmdSetup(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"setup takes no arguments"}
	}
	// A deployment starts its services together: wait for PostgreSQL and Temporal to answer.
	if err := untilReady(ctx, stdout, "PostgreSQL", setupWait, func() error {
		_, err := d.store(ctx) // opening the store applies the migrations
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database migrations applied")
	var tc client.Client
	if err := untilReady(ctx, stdout, "Temporal", setupWait, func() error {
		c, err := d.temporal()
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		}
		tc = c
		return err
	}); err != nil {
		return err
	}
	opts, err := d.cfg.TemporalOptions(d.cfg.Logger())
	if err != nil {
		return err
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "default"
	}
	if _, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns}); err != nil {
		var nf *serviceerror.NamespaceNotFound
		if !errors.As(err, &nf) {
			return fmt.Errorf("describe namespace %s: %w", ns, err)
		}
		if _, err := tc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(30 * 24 * time.Hour),
		}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
		fmt.Fprintf(stdout, "namespace %s created (30 days retention)\n", ns)
	}
	// A namespace just created becomes visible to every server role within seconds.
	var have *operatorservice.ListSearchAttributesResponse
	for deadline := time.Now().Add(60 * time.Second); ; {
		have, err = tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		var nf *serviceerror.NamespaceNotFound
		if !errors.As(err, &nf) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, sa := range recoup.SearchAttributes {
		if _, ok := have.CustomAttributes[sa.Name]; ok {
			continue
		}
		t := enumspb.INDEXED_VALUE_TYPE_KEYWORD
		if sa.Type == "Int" {
			t = enumspb.INDEXED_VALUE_TYPE_INT
		}
		missing[sa.Name] = t
	}
	if len(missing) > 0 {
		if _, err := tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: ns, SearchAttributes: missing,
		}); err != nil {
			return fmt.Errorf("register search attributes on namespace %s (on Temporal Cloud, add them with tcld or the Cloud UI: `starter search-attributes` lists them): %w", ns, err)
		}
	}
	fmt.Fprintf(stdout, "search attributes on namespace %s: %d registered, %d already there\n", ns, len(missing), len(recoup.SearchAttributes)-len(missing))
	return nil
}

// cmdProbe is the containers' health check (the images have no shell or curl): GET URL and
// exit 0 on a 2xx answer.
func cmdProbe(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: starter probe URL"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return usageError{err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", args[0], resp.Status)
	}
	return nil
}

// setupWait bounds how long setup waits for PostgreSQL and Temporal to answer.
var setupWait = 3 * time.Minute

// untilReady calls try until it succeeds, printing why it waits, for at most limit.
func untilReady(ctx context.Context, stdout io.Writer, what string, limit time.Duration, try func() error) error {
	deadline := time.Now().Add(limit)
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", what, limit, err)
		}
		fmt.Fprintf(stdout, "waiting for %s (%v); trying again in %s\n", what, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
