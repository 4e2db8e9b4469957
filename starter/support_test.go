package main

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// The support subcommands run Updates on a real run and print its answer or its refusal.
func TestSupportCommands(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	h.Event(workertest.Failed("evt_sup_1", "inv_sup", "cus_sup", time.Now().UTC()))
	h.Eventually("the first message", func() bool { return h.Messages("inv_sup") == 1 })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client}
	do := func(args ...string) (string, error) { return runWithDeps(d, args...) }
	if out, err := do("pause", "inv_sup", "--by", "alice", "--reason", "customer called"); err != nil || !strings.Contains(out, "status paused") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	if _, err := do("pause", "inv_sup"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "already paused") {
		t.Fatalf("pause again: %v (exit %d), want a refusal", err, exitCode(err))
	}
	if _, err := do("set-channel", "inv_sup", "fax"); exitCode(err) != 2 {
		t.Fatalf("set-channel fax: %v", err)
	}
	if _, err := do("resolve", "inv_sup"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--note") {
		t.Fatalf("resolve without a note: %v, want a usage error", err)
	}
	if _, err := do("resolve", "inv_sup", "--note", "called"); exitCode(err) != 2 || !strings.Contains(err.Error(), "does not need attention") {
		t.Fatalf("resolve a paused run: %v, want a refusal", err)
	}
	if out, err := do("resume", "inv_sup", "--by", "alice"); err != nil || !strings.Contains(out, "status active") {
		t.Fatalf("resume: %q, %v", out, err)
	}
	if out, err := do("set-channel", "inv_sup", "sms", "--by", "bob"); err != nil || !strings.Contains(out, "sms") {
		t.Fatalf("set-channel: %q, %v", out, err)
	}
	if out, err := do("act-now", "inv_sup", "--by", "bob", "--reason", "asked for the link"); err != nil {
		t.Fatalf("act-now: %q, %v", out, err)
	}
	h.Eventually("the second message, by SMS", func() bool { return h.Messages("inv_sup") == 2 })
	st := h.State("inv_sup")
	if st.Messages[1].Channel != recoup.ChannelSMS {
		t.Fatalf("second message by %s, want sms", st.Messages[1].Channel)
	}
	if _, err := do("cancel", "inv_sup"); exitCode(err) != 2 {
		t.Fatalf("cancel without reason: %v, want a usage error", err)
	}
	if out, err := do("cancel", "inv_sup", "--reason", "refunded", "--by", "dave"); err != nil || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: %q, %v", out, err)
	}
	if res := h.Result("inv_sup"); res.Status != recoup.StatusCanceled {
		t.Fatalf("result = %+v", res)
	}
	if _, err := do("pause", "inv_nobody"); err == nil || !strings.Contains(err.Error(), "no dunning run") {
		t.Fatalf("unknown run: %v", err)
	}
	if len(st.Actions) != 4 {
		t.Fatalf("actions = %+v, want pause, resume, set-next-channel, act-now recorded", st.Actions)
	}
}
