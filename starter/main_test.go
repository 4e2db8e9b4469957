package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unreachable points the starter at services that do not exist, so a test proves that bad
// input is refused before anything is contacted, recorded or started.
func unreachable(name string) string {
	switch name {
	case "DATABASE_URL":
		return "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
	case "TEMPORAL_ADDRESS":
		return "127.0.0.1:1"
	}
	return ""
}

func TestMalformedEventsAreRefusedWithTheField(t *testing.T) {
	cases := []struct{ name, event, want string }{
		{"not JSON", `{"type":`, "not valid JSON"},
		{"unknown type", `{"type":"payment.exploded","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z"}`, "type:"},
		{"missing field", `{"type":"payment.failed","event_id":"e1","invoice_id":"i1","amount_minor":100,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z"}`, "customer_id: required"},
		{"wrong type", `{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":"100","currency":"USD","occurred_at":"2026-11-29T10:00:00Z"}`, "amount_minor: must be an integer"},
		{"negative amount", `{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":-1,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z"}`, "amount_minor: must be positive"},
		{"unknown currency", `{"type":"payment.failed","event_id":"e1","invoice_id":"i1","customer_id":"c1","amount_minor":1,"currency":"ABC","occurred_at":"2026-11-29T10:00:00Z"}`, "currency:"},
		{"email as invoice id", `{"type":"payment.recovered","event_id":"e1","invoice_id":"ada@example.com","occurred_at":"2026-11-29T10:00:00Z"}`, "invoice_id:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"event", "-"}, unreachable, strings.NewReader(tc.event), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one naming %q", err, tc.want)
			}
			if exitCode(err) != 2 {
				t.Fatalf("exit code = %d, want 2", exitCode(err))
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q for a refused event", out.String())
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"launch"}, {"status"}, {"event", "a", "b"}, {"customers", "export"}} {
		err := run(context.Background(), args, unreachable, strings.NewReader(""), &bytes.Buffer{})
		if exitCode(err) != 2 {
			t.Errorf("%q: error %v, exit code %d; want 2", args, err, exitCode(err))
		}
	}
}

func TestMissingFileIsAClearError(t *testing.T) {
	err := run(context.Background(), []string{"event", filepath.Join(t.TempDir(), "nope.json")}, unreachable, nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "nope.json") || exitCode(err) != 2 {
		t.Fatalf("error = %v", err)
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	env := func(name string) string {
		if name == "RECOUP_SCHEDULE" {
			return "3d,1h"
		}
		return unreachable(name)
	}
	err := run(context.Background(), []string{"seed"}, env, nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "RECOUP_SCHEDULE") {
		t.Fatalf("error = %v, want it to name RECOUP_SCHEDULE", err)
	}
}

func TestUnreachableDatabaseIsAClearError(t *testing.T) {
	ev := `{"type":"payment.recovered","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z"}`
	err := run(context.Background(), []string{"event", "-"}, unreachable, strings.NewReader(ev), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL") || exitCode(err) != 1 {
		t.Fatalf("error = %v (exit %d), want a PostgreSQL error with exit 1", err, exitCode(err))
	}
}

func TestCustomersImportRefusesABadFileWhole(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("customer_id,email,time_zone\ncus_i2,not-an-email,Mars/Base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"customers", "import", bad}, unreachable, nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "email") || !strings.Contains(err.Error(), "time_zone") || exitCode(err) != 2 {
		t.Fatalf("bad file: error = %v", err)
	}
}

func TestPromptsLintAndPreview(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"prompts", "lint"}, unreachable, nil, &out); err != nil || !strings.Contains(out.String(), "no problems") {
		t.Fatalf("lint of the shipped prompts: %v\n%s", err, out.String())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("schedule_days: [3, 1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(context.Background(), []string{"prompts", "lint", dir}, unreachable, nil, &out)
	if exitCode(err) != 2 || !strings.Contains(out.String(), "system.tmpl: file is missing") || !strings.Contains(out.String(), "policy.yaml") {
		t.Fatalf("lint of a broken set: %v (exit %d)\n%s", err, exitCode(err), out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"prompts", "preview", "--customer", "lucia-basic-es", "--step", "2"}, unreachable, nil, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"===== system message =====", "<customer_data>", "===== answer schema =====", "rules  ", "Hola Lucía:", "GSM-7 segments"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	if err := run(context.Background(), []string{"prompts", "preview", "--customer", "lucia-basic-es", "--variant", "nope"}, unreachable, nil, &out); exitCode(err) != 2 {
		t.Fatalf("unknown variant: %v", err)
	}
}
