package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// Deployment jobs: migrate, setup, search-attributes, probe.
func addDeployCommands(root *cobra.Command, a *app) {
	root.AddCommand(&cobra.Command{
		Use:     "migrate",
		GroupID: "deploy",
		Short:   "Apply the database migrations",
		Long:    "Apply Recoup's database migrations to DATABASE_URL (the worker also applies them at start).",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := postgres.Open(cmd.Context(), a.d.cfg.DatabaseURL, postgres.Options{})
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "migrations applied: %d new %v\n", len(applied), applied)
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use:     "setup",
		GroupID: "deploy",
		Short:   "Apply migrations and register the search attributes",
		Long: `Prepare a deployment: wait until PostgreSQL and Temporal answer, apply the database
migrations, create the Temporal namespace if it is missing (30 days retention) and register
Recoup's search attributes on it (those already there are left alone).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return setup(cmd.Context(), a.d, a.stdout) },
	})
	root.AddCommand(&cobra.Command{
		Use:     "search-attributes",
		GroupID: "deploy",
		Short:   "Print the search attributes to register (Name=Type)",
		Long: `Print the search attributes Recoup needs, one Name=Type a line, as
` + "`temporal server start-dev --search-attribute`" + ` takes them (on Temporal Cloud, register them with
tcld or the Cloud UI; on a self-hosted cluster ` + "`starter setup`" + ` does it).`,
		Args:        noArgs,
		Annotations: map[string]string{noConfig: "self"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, sa := range recoup.SearchAttributes {
				fmt.Fprintf(a.stdout, "%s=%s\n", sa.Name, sa.Type)
			}
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use:     "probe URL",
		GroupID: "deploy",
		Short:   "Health check: exit 0 when URL answers 2xx",
		Long: `GET URL and exit 0 when it answers 2xx within 5 seconds, 1 otherwise: the containers' health
check (the images have no shell or curl).`,
		Example:     "  starter probe http://127.0.0.1:8080/readyz",
		Args:        exactArgs(1, "URL"),
		Annotations: map[string]string{noConfig: "self"},
		RunE:        func(cmd *cobra.Command, args []string) error { return probe(cmd.Context(), args[0]) },
	})
}

// setup prepares a deployment: applies the database migrations and registers Recoup's
// search attributes on the Temporal namespace (those already there are left alone).
func setup(ctx context.Context, d *deps, stdout io.Writer) error {
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

// probe is the containers' health check (the images have no shell or curl): GET url and
// exit 0 on a 2xx answer.
func probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError{err.Error()}
	}
	c := http.DefaultClient
	if h := req.URL.Hostname(); req.URL.Scheme == "https" && (h == "localhost" || net.ParseIP(h).IsLoopback()) {
		// A container's health check of its own loopback port (the codec server's
		// CODEC_TLS_SELF_SIGNED certificate): liveness, nothing secret, nothing sent.
		c = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback liveness only
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
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
