package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
)

// Support reads the retry advice billing was given in `starter status`; a past time is
// never shown as if it were ahead.
func TestStatusShowsTheRetryAdvice(t *testing.T) {
	now := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	s := recoup.State{InvoiceID: "inv_1", Status: recoup.StatusActive, Retry: &recoup.RetryState{Advice: &recoup.RetryAdvice{
		Class: recoup.DeclineInsufficientFunds, RetryAt: now.Add(48 * time.Hour), Remaining: 7, Delivery: "sent", Reason: "insufficient funds: next payday"}}}
	var out bytes.Buffer
	PrintState(&out, "dunning-inv_1", s, nil, now)
	if !strings.Contains(out.String(), "retry advice  retry at 2026-03-06T14:00:00Z (7 attempts left) · insufficient_funds · billing sent") {
		t.Fatalf("status:\n%s", out.String())
	}
	out.Reset()
	PrintState(&out, "dunning-inv_1", s, nil, now.Add(72*time.Hour))
	if !strings.Contains(out.String(), "was advised for 2026-03-06T14:00:00Z, now past") {
		t.Fatalf("status after the advised time:\n%s", out.String())
	}
}

// Support sees a run's holdout arm in `starter status`.
func TestStatusShowsTheHoldoutArm(t *testing.T) {
	now := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	s := recoup.State{InvoiceID: "inv_1", Status: recoup.StatusActive, Decisions: []recoup.Decision{{Step: 1,
		Channel: recoup.ChannelNone, DecidedBy: recoup.DecidedByRules, Holdout: "control",
		DeciderNote: "rules: holdout control arm (no_messages), so no model was asked"}}}
	var out bytes.Buffer
	PrintState(&out, "dunning-inv_1", s, nil, now)
	if !strings.Contains(out.String(), "holdout  control arm") || !strings.Contains(out.String(), "holdout control arm (no_messages)") {
		t.Fatalf("status:\n%s", out.String())
	}
	s.Decisions[0].Holdout = ""
	out.Reset()
	PrintState(&out, "dunning-inv_1", s, nil, now)
	if strings.Contains(out.String(), "holdout  ") {
		t.Fatalf("status of a run outside the holdout:\n%s", out.String())
	}
}
