package policy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// approvalOn is the shipped policy with its approval section turned on and changed by mutate.
func approvalOn(t *testing.T, mutate func(ap, rules map[string]any)) []byte {
	return mutated(t, func(m map[string]any) {
		ap := m["approval"].(map[string]any)
		ap["enabled"] = true
		mutate(ap, ap["rules"].(map[string]any))
	})
}

func TestShippedPolicyShipsApprovalsOff(t *testing.T) {
	p := defaultPolicy(t)
	if p.Approval.Enabled {
		t.Fatal("the shipped policy holds messages for approval; it must ship with approval.enabled: false")
	}
	dec := recoup.Decision{Channel: recoup.ChannelSMS, Incentive: recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 20}}
	if r := p.ApprovalRules(policy.ApprovalFacts{AmountMinor: 1e9, Currency: "USD", Plan: "enterprise", Decision: dec}); r != nil {
		t.Fatalf("rules = %q with approval off, want none", r)
	}
}

func TestApprovalRulesNameWhatHoldsTheMessage(t *testing.T) {
	p, err := policy.Parse(approvalOn(t, func(map[string]any, map[string]any) {}))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(p.Approval.Timeout); got != 24*time.Hour {
		t.Fatalf("timeout = %s", got)
	}
	email := recoup.Decision{Channel: recoup.ChannelEmail, Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}
	for _, tc := range []struct {
		name string
		f    policy.ApprovalFacts
		want []string
	}{
		{"small amount, basic plan", policy.ApprovalFacts{AmountMinor: 4900, Currency: "USD", Plan: "basic", Decision: email}, nil},
		{"amount at the threshold", policy.ApprovalFacts{AmountMinor: 200000, Currency: "USD", Plan: "basic", Decision: email}, nil},
		{"amount above, USD", policy.ApprovalFacts{AmountMinor: 200001, Currency: "USD", Plan: "basic", Decision: email}, []string{"amount_due_above USD 2000.00"}},
		{"currency without a threshold", policy.ApprovalFacts{AmountMinor: 1e9, Currency: "JPY", Plan: "basic", Decision: email}, nil},
		{"enterprise plan", policy.ApprovalFacts{AmountMinor: 100, Currency: "EUR", Plan: "enterprise", Decision: email}, []string{"plan enterprise"}},
		{"discount above 15%", policy.ApprovalFacts{Currency: "USD", Plan: "pro", Decision: recoup.Decision{Channel: recoup.ChannelEmail,
			Incentive: recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 20}}}, []string{"discount_above_percent 15"}},
		{"extension above 21 days", policy.ApprovalFacts{Currency: "USD", Plan: "pro", Decision: recoup.Decision{Channel: recoup.ChannelEmail,
			Incentive: recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 30}}}, []string{"extension_above_days 21"}},
		{"first SMS", policy.ApprovalFacts{Currency: "USD", Plan: "pro", Decision: recoup.Decision{Channel: recoup.ChannelSMS}}, []string{"first_sms"}},
		{"a later SMS", policy.ApprovalFacts{Currency: "USD", Plan: "pro", SMSSentBefore: true, Decision: recoup.Decision{Channel: recoup.ChannelSMS}}, nil},
		{"nothing sent", policy.ApprovalFacts{AmountMinor: 1e9, Currency: "USD", Plan: "enterprise", Decision: recoup.Decision{Channel: recoup.ChannelNone}}, nil},
	} {
		if got := p.ApprovalRules(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: rules = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInvalidApprovalSectionsAreRefusedNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(ap, rules map[string]any)
		want   string
	}{
		{"timeout not a duration", func(ap, _ map[string]any) { ap["timeout"] = "a day" }, `"a day" is not a duration like 24h`},
		{"timeout too short", func(ap, _ map[string]any) { ap["timeout"] = "10s" }, "approval.timeout"},
		{"timeout too long", func(ap, _ map[string]any) { ap["timeout"] = "200h" }, "approval.timeout"},
		{"unknown on_timeout", func(ap, _ map[string]any) { ap["on_timeout"] = "send_anyway" }, `approval.on_timeout: "send_anyway" is not send_rules_without_incentive or skip`},
		{"unknown currency", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"USX": "10.00"} }, "approval.rules.amount_due_above.USX"},
		{"withdrawn currency", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"HRK": "10.00"} }, "use EUR"},
		{"lower-case code", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"usd": "10.00"} }, "write the code in capitals (USD)"},
		{"amount not a number", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"USD": "ten"} }, `"ten" is not an amount like 1000.00`},
		{"too many decimals", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"JPY": "100.5"} }, "has 1 decimals; the currency has 0"},
		{"zero amount", func(_, r map[string]any) { r["amount_due_above"] = map[string]any{"USD": "0"} }, "must be a positive amount"},
		{"unknown plan", func(_, r map[string]any) { r["plans"] = []any{"platinum"} }, `approval.rules.plans[0]: "platinum" is not a plan listed under plans`},
		{"discount over 100", func(_, r map[string]any) { r["discount_above_percent"] = 120 }, "approval.rules.discount_above_percent"},
		{"negative extension", func(_, r map[string]any) { r["extension_above_days"] = -1 }, "approval.rules.extension_above_days"},
		{"unknown rule", func(_, r map[string]any) { r["vip"] = true }, "field vip not found"},
		{"no rule at all", func(ap, _ map[string]any) { ap["rules"] = map[string]any{} }, "enabled without any rule"},
	} {
		_, err := policy.Parse(approvalOn(t, tc.mutate))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// Off, the section is still checked: turning it on later cannot reveal a mistake.
	off := mutated(t, func(m map[string]any) {
		m["approval"].(map[string]any)["on_timeout"] = "send"
	})
	if _, err := policy.Parse(off); err == nil || !strings.Contains(err.Error(), "approval.on_timeout") {
		t.Errorf("a disabled section with a bad on_timeout: err = %v", err)
	}
}

// An edit is held to the bounds the policy's check of a model answer uses.
func TestEditLimitsFollowThePlanAndItsBudget(t *testing.T) {
	p := defaultPolicy(t)
	f := policy.Facts{Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelEmail}}
	l := p.EditLimits(f, 4, 30) // pro: caps 10% / 14 days; 4% of the discount budget left
	if l.MaxDiscountPercent != 4 || l.MaxExtensionDays != 14 {
		t.Fatalf("limits = %+v, want 4%% (budget) and 14 days (cap)", l)
	}
	var ans policy.Answer
	ans.Channel, ans.Tone, ans.Subject, ans.Message = "sms", "friendly", "s", "m"
	ans.Incentive.Kind, ans.Incentive.Value = recoup.IncentiveDiscountPercent, 5
	v := policy.CheckChoice(l, ans)
	if len(v) != 2 || !strings.Contains(v[0], "channel sms is not allowed") || !strings.Contains(v[1], "discount 5% is outside 1..4%") {
		t.Fatalf("violations = %q", v)
	}
}
