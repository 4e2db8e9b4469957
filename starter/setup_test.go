package main

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/testsuite"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

func TestSetupRegistersSearchAttributes(t *testing.T) {
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: fakes.TemporalCLI(t), ExtraArgs: []string{"--headless"}, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, st: fakes.MustStore(t), tc: srv.Client()}
	for i, want := range []string{"9 registered, 0 already there", "0 registered, 9 already there"} {
		out, err := runWithDeps(d, "setup")
		if err != nil {
			t.Fatalf("setup %d: %v", i+1, err)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("setup %d said %q, want %q", i+1, out, want)
		}
	}
	have, err := srv.Client().OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range recoup.SearchAttributes {
		if _, ok := have.CustomAttributes[sa.Name]; !ok {
			t.Errorf("%s not registered", sa.Name)
		}
	}
}

func TestSetupCreatesTheNamespace(t *testing.T) {
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: fakes.TemporalCLI(t), ExtraArgs: []string{"--headless"}, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	t.Setenv("TEMPORAL_NAMESPACE", "recoup-prod")
	cfg, _ := config.FromEnv(func(string) string { return "" })
	out, err := runWithDeps(&deps{cfg: cfg, st: fakes.MustStore(t), tc: srv.Client()}, "setup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "namespace recoup-prod created") || !strings.Contains(out, "9 registered") {
		t.Fatalf("setup said %q", out)
	}
}
