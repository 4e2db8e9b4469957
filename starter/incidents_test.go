package main

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// `starter incidents` lists the detector's incidents from PostgreSQL and applies an
// operator's actions through the detector's update, refusing what does not apply.
func TestIncidentsCommand(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client, st: h.Store}
	do := func(args ...string) (string, error) { return runWithDeps(d, append([]string{"incidents"}, args...)...) }
	if out, err := do(); err != nil || !strings.Contains(out, "no open incidents") || !strings.Contains(out, "detector mode: not running") {
		t.Fatalf("incidents with none: %q, %v", out, err)
	}
	if _, err := do("ack", "inc-1"); exitCode(err) != 2 || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("ack without a detector: %v", err)
	}
	if _, err := do("shout", "inc-1"); exitCode(err) != 2 || !strings.Contains(err.Error(), `unknown action "shout"`) {
		t.Fatalf("unknown action: %v", err)
	}

	h.FailureSpike("cmd", "411111")
	out, err := do()
	if err != nil || !strings.Contains(out, "bin=411111") || !strings.Contains(out, "open") || !strings.Contains(out, "expected") {
		t.Fatalf("incidents: %q, %v", out, err)
	}
	// No payment volume was reported: operators are told what the detector cannot see.
	if !strings.Contains(out, "detector mode: shares") || !strings.Contains(out, "payment.succeeded") {
		t.Fatalf("incidents do not say how the detector judges: %q", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, err := do("ack", id, "--by", "oncall", "--note", "looking"); err != nil || !strings.Contains(out, "acknowledged") { // --note: the old spelling of --reason
		t.Fatalf("ack: %q, %v", out, err)
	}
	if _, err := do("ack", id); exitCode(err) != 2 || !strings.Contains(err.Error(), "only an open incident") {
		t.Fatalf("ack twice: %v, want a refusal", err)
	}
	if out, err := do("false-alarm", id, "--reason", "load test"); err != nil || !strings.Contains(out, "false_alarm") {
		t.Fatalf("false-alarm: %q, %v", out, err)
	}
	if out, _ := do(); !strings.Contains(out, "no open incidents") {
		t.Fatalf("a false alarm is still listed as open: %q", out)
	}
	if out, _ := do("--all"); !strings.Contains(out, id) || !strings.Contains(out, "false_alarm") {
		t.Fatalf("--all: %q", out)
	}
}
