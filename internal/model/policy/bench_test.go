package policy_test

// Benchmarks of the guardrails every decision runs: Check on the model's answer, the
// rules fallback and the answer schema sent with each model request.
//
//	go test -run '^$' -bench . -benchmem ./internal/policy
//
// scripts/bench-decision.sh runs these with -count 6 for benchstat.

import (
	"io/fs"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/prompts"
)

// benchPolicy parses the shipped prompts/policy.yaml and guardrails.yaml once, outside any
// timed loop.
func benchPolicy(b *testing.B) *policy.Policy {
	b.Helper()
	y, err := fs.ReadFile(prompts.Default, "policy.yaml")
	if err != nil {
		b.Fatalf("read the shipped policy.yaml: %v", err)
	}
	p, err := policy.Parse(y)
	if err != nil {
		b.Fatalf("Parse(prompts/policy.yaml): %v", err)
	}
	p.Guardrails = defaultGuardrails(b)
	return p
}

func benchFacts() policy.Facts {
	return policy.Facts{Step: 2, Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS},
		AmountDue: "$99.00", Language: "en-US"}
}

// benchAnswers are model answers of typical length: usable ones, and one that breaks
// several rules at once (tone, discount cap, link, email address, missing subject).
func benchAnswers() []struct {
	name       string
	a          policy.Answer
	violations bool
} {
	email := func() policy.Answer {
		var a policy.Answer
		a.Channel, a.Tone = "email", "friendly"
		a.Incentive.Kind, a.Incentive.Value = recoup.IncentiveExtensionDays, 7
		a.Subject = "Your payment didn't go through"
		a.Message = "We couldn't charge your card for $99.00. It happens - updating your card takes a minute, " +
			"and your Pro features stay on meanwhile. If you need a little more time, we've added 7 extra days to pay."
		a.Rationale = "Loyal customer for two years with one earlier failure that recovered; a friendly nudge and a short extension should do."
		return a
	}
	sms := email()
	sms.Channel, sms.Tone, sms.Subject = "sms", "helpful", ""
	sms.Incentive.Kind, sms.Incentive.Value = recoup.IncentiveNone, 0
	sms.Message = "Your payment of $99.00 didn't go through. Updating your card takes a minute."
	bad := email()
	bad.Tone = "threatening"
	bad.Incentive.Kind, bad.Incentive.Value = recoup.IncentiveDiscountPercent, 50
	bad.Subject = ""
	bad.Message = "Pay now at https://evil.example/pay or write to billing@evil.example, or we will send you to collections."
	return []struct {
		name       string
		a          policy.Answer
		violations bool
	}{
		{"valid/email", email(), false},
		{"valid/sms", sms, false},
		{"violations", bad, true},
	}
}

// BenchmarkCheck enforces the policy on a model answer.
func BenchmarkCheck(b *testing.B) {
	p := benchPolicy(b)
	f := benchFacts()
	for _, tc := range benchAnswers() {
		b.Run(tc.name, func(b *testing.B) {
			if _, v := p.Check(tc.a, f); (len(v) > 0) != tc.violations {
				b.Fatalf("Check: violations %q, want some: %v", v, tc.violations)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Check(tc.a, f)
			}
		})
	}
}

// BenchmarkRulesDecision is the deterministic fallback, per language of the rule texts.
func BenchmarkRulesDecision(b *testing.B) {
	p := benchPolicy(b)
	for _, lang := range []struct{ name, tag, amount string }{
		{"en", "en-US", "$99.00"}, {"es", "es-ES", "29,00 €"}, {"de", "de-DE", "499,00 €"},
	} {
		b.Run(lang.name, func(b *testing.B) {
			f := benchFacts()
			f.Language, f.AmountDue = lang.tag, lang.amount
			if d, err := p.RulesDecision(f); err != nil || d.Message == "" {
				b.Fatalf("RulesDecision = %+v, %v", d, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.RulesDecision(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSchema builds the JSON Schema sent with every model request.
func BenchmarkSchema(b *testing.B) {
	p := benchPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		if len(p.Schema()) == 0 {
			b.Fatal("empty schema")
		}
	}
}
