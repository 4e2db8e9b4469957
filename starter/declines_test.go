package main

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
)

func TestStatusShowsEachDecisionsDeclineClass(t *testing.T) {
	var b strings.Builder
	printRecords(&b, recoup.State{Decisions: []recoup.Decision{
		{Step: 1, Channel: recoup.ChannelNone, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}, DecidedBy: recoup.DecidedByRules, DeclineClass: recoup.DeclineIssuerUnavailable},
		{Step: 2, Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}, DecidedBy: recoup.DecidedByLLM},
	}})
	out := b.String()
	if !strings.Contains(out, "decision step 1: none · friendly · incentive none 0 · by rules · decline issuer_unavailable\n") ||
		!strings.Contains(out, "decision step 2: email · friendly · incentive none 0 · by llm\n") {
		t.Errorf("status:\n%s\nwant step 1's decline class, and none for a decision made before classes", out)
	}
}
