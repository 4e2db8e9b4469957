package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

func both() []recoup.Channel { return []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS} }

func validAnswer() policy.Answer {
	var a policy.Answer
	a.Channel = "email"
	a.Tone = "friendly"
	a.Incentive.Kind = recoup.IncentiveNone
	a.Subject = "Your payment didn't go through"
	a.Message = "We could not charge your card for $49.00. Updating it takes a minute."
	a.Rationale = "first reminder, loyal customer"
	return a
}

func proFacts() policy.Facts {
	return policy.Facts{Step: 2, Plan: "pro", AllowedChannels: both(), AmountDue: "$49.00"}
}

func TestCheckAcceptsValidAnswers(t *testing.T) {
	p := defaultPolicy(t)
	tests := []struct {
		name   string
		mutate func(a *policy.Answer)
		want   recoup.Decision
	}{
		{"email", func(*policy.Answer) {}, recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly",
			Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}},
		{"sms without subject", func(a *policy.Answer) { a.Channel, a.Subject, a.Tone = "sms", "", "urgent" },
			recoup.Decision{Channel: recoup.ChannelSMS, Tone: "urgent", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}},
		{"discount at the plan cap", func(a *policy.Answer) { a.Incentive.Kind, a.Incentive.Value = "discount_percent", 10 },
			recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: "discount_percent", Value: 10}}},
		{"extension at the plan cap", func(a *policy.Answer) { a.Incentive.Kind, a.Incentive.Value = "extension_days", 14 },
			recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: "extension_days", Value: 14}}},
		{"no incentive drops a stray value", func(a *policy.Answer) { a.Incentive.Value = 50 },
			recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}},
		{"channel none needs no message", func(a *policy.Answer) { a.Channel, a.Message, a.Subject = "none", "", "" },
			recoup.Decision{Channel: recoup.ChannelNone, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAnswer()
			tt.mutate(&a)
			d, v := p.Check(a, proFacts())
			if len(v) > 0 {
				t.Fatalf("Check = violations %q, want none", v)
			}
			if d.Channel != tt.want.Channel || d.Tone != tt.want.Tone || d.Incentive != tt.want.Incentive {
				t.Errorf("decision channel %q tone %q incentive %+v; want %q %q %+v",
					d.Channel, d.Tone, d.Incentive, tt.want.Channel, tt.want.Tone, tt.want.Incentive)
			}
			if d.Step != 2 || d.DecidedBy != recoup.DecidedByLLM {
				t.Errorf("Step, DecidedBy = %d, %q; want 2, llm", d.Step, d.DecidedBy)
			}
		})
	}
}

func TestCheckTrimsAndSanitizes(t *testing.T) {
	p := defaultPolicy(t)
	a := validAnswer()
	a.Subject = "  Your\u200b payment\x07  "
	a.Message = "\n Hello\x00 there.\r\nPlease pay\u202e soon.\t\n"
	a.Rationale = " loyal\x1b[31m customer "
	d, v := p.Check(a, proFacts())
	if len(v) > 0 {
		t.Fatalf("violations %q", v)
	}
	if d.Subject != "Your payment" {
		t.Errorf("Subject = %q, want %q", d.Subject, "Your payment")
	}
	if d.Message != "Hello there.\nPlease pay soon." {
		t.Errorf("Message = %q", d.Message)
	}
	if d.Rationale != "loyal[31m customer" {
		t.Errorf("Rationale = %q", d.Rationale)
	}
}

func TestCheckViolations(t *testing.T) {
	p := defaultPolicy(t)
	tests := []struct {
		name   string
		mutate func(a *policy.Answer, f *policy.Facts)
		want   string // one violation must contain it
	}{
		{"unknown channel", func(a *policy.Answer, _ *policy.Facts) { a.Channel = "whatsapp" }, `channel "whatsapp" is not email, sms or none`},
		{"empty channel", func(a *policy.Answer, _ *policy.Facts) { a.Channel = "" }, `channel "" is not`},
		{"channel not allowed", func(a *policy.Answer, f *policy.Facts) {
			a.Channel, a.Subject = "sms", ""
			f.AllowedChannels = []recoup.Channel{recoup.ChannelEmail}
		},
			"channel sms is not allowed for this customer (allowed: email)"},
		{"non-consented customer", func(_ *policy.Answer, f *policy.Facts) { f.AllowedChannels = nil },
			"channel email is not allowed for this customer (allowed: none)"},
		{"tone not allowed", func(a *policy.Answer, _ *policy.Facts) { a.Tone = "threatening" }, `tone "threatening" is not one of friendly, helpful, firm, urgent`},
		{"tone with other case", func(a *policy.Answer, _ *policy.Facts) { a.Tone = "Friendly" }, `tone "Friendly"`},
		{"discount above the plan cap", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "discount_percent", 11 },
			`discount 11% is outside 1..10% for plan "pro"`},
		{"discount on a plan without discounts", func(a *policy.Answer, f *policy.Facts) {
			a.Incentive.Kind, a.Incentive.Value = "discount_percent", 5
			f.Plan = "basic"
		}, `discount 5% is outside 1..0% for plan "basic"`},
		{"discount on an unknown plan uses the default cap", func(a *policy.Answer, f *policy.Facts) {
			a.Incentive.Kind, a.Incentive.Value = "discount_percent", 5
			f.Plan = "legacy"
		}, `discount 5% is outside 1..0%`},
		{"extension above the plan cap", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "extension_days", 15 },
			`extension of 15 days is outside 1..14 for plan "pro"`},
		{"negative discount", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "discount_percent", -5 },
			"discount -5% is outside"},
		{"negative extension", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "extension_days", -3 },
			"extension of -3 days is outside"},
		{"zero discount", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "discount_percent", 0 },
			"discount 0% is outside"},
		{"unknown incentive kind", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind, a.Incentive.Value = "free_month", 1 },
			`incentive kind "free_month" is unknown`},
		{"empty incentive kind", func(a *policy.Answer, _ *policy.Facts) { a.Incentive.Kind = "" }, `incentive kind "" is unknown`},
		{"SMS too long", func(a *policy.Answer, _ *policy.Facts) { a.Channel, a.Message = "sms", strings.Repeat("a", 161) },
			"SMS message has 161 characters, more than 160"},
		{"SMS length counts characters, not bytes", func(a *policy.Answer, _ *policy.Facts) { a.Channel, a.Message = "sms", strings.Repeat("é", 161) },
			"SMS message has 161 characters"},
		{"email too long", func(a *policy.Answer, _ *policy.Facts) { a.Message = strings.Repeat("a", 1201) },
			"email message has 1201 characters, more than 1200"},
		{"subject too long", func(a *policy.Answer, _ *policy.Facts) { a.Subject = strings.Repeat("s", 101) },
			"subject has 101 characters, more than 100"},
		{"email without subject", func(a *policy.Answer, _ *policy.Facts) { a.Subject = "" }, "email subject is empty"},
		{"email with a blank subject", func(a *policy.Answer, _ *policy.Facts) { a.Subject = " \x07 " }, "email subject is empty"},
		{"empty message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "  " }, "message is empty"},
		{"link in message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "Pay at https://evil.example/pay now." }, "message contains a link"},
		{"bare domain in message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "Visit paynow.com to update your card." }, "message contains a link"},
		{"www link in message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "Go to www.example.org today." }, "message contains a link"},
		{"link in subject", func(a *policy.Answer, _ *policy.Facts) { a.Subject = "Pay at bit.ly/xyz" }, "subject contains a link"},
		{"email address in message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "Questions? Write to help@billing.example." },
			"message contains an email address"},
		{"email address in subject", func(a *policy.Answer, _ *policy.Facts) { a.Subject = "From ada@corp.example" },
			"subject contains an email address"},
		{"phone number in message", func(a *policy.Answer, _ *policy.Facts) { a.Message = "Call us on +1 (415) 555-2671." },
			"message contains a phone number"},
		{"phone number in an SMS", func(a *policy.Answer, _ *policy.Facts) {
			a.Channel, a.Subject, a.Message = "sms", "", "Call 0800 123 4567 now"
		},
			"message contains a phone number"},
		{"phone number in subject", func(a *policy.Answer, _ *policy.Facts) { a.Subject = "Call 415-555-2671" },
			"subject contains a phone number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, f := validAnswer(), proFacts()
			tt.mutate(&a, &f)
			d, v := p.Check(a, f)
			if len(v) == 0 {
				t.Fatalf("Check accepted the answer: %+v", d)
			}
			if d.Channel != "" || d.Message != "" || d.DecidedBy != "" {
				t.Errorf("Check returned a decision with violations: %+v", d)
			}
			found := false
			for _, x := range v {
				found = found || strings.Contains(x, tt.want)
			}
			if !found {
				t.Errorf("violations %q: none contains %q", v, tt.want)
			}
		})
	}
}

// The amount due (as formatted for the customer) may appear; other amounts may not (see
// TestCheckRefusesWhatThePolicyForbids).
func TestCheckAllowsTheAmountDueAndPlainText(t *testing.T) {
	p := defaultPolicy(t)
	for _, msg := range []string{
		"Your payment of $49.00 did not go through.",
		"Your payment did not go through, e.g. because the card expired.",
		"We tried a few times. Please update your card.",
	} {
		a := validAnswer()
		a.Message = msg
		if _, v := p.Check(a, proFacts()); len(v) > 0 {
			t.Errorf("Check(%q) = violations %q, want none", msg, v)
		}
	}
}

func TestCheckReportsEveryViolation(t *testing.T) {
	p := defaultPolicy(t)
	a := validAnswer()
	a.Tone = "rude"
	a.Incentive.Kind, a.Incentive.Value = "discount_percent", 90
	a.Subject = ""
	a.Message = "Email ada@corp.example"
	_, v := p.Check(a, proFacts())
	if len(v) != 4 {
		t.Errorf("violations %q, want 4 (tone, discount, email address, subject)", v)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"line 1\nline 2\tend", "line 1\nline 2\tend"},
		{"bell\x07 and null\x00", "bell and null"},
		{"carriage\r return", "carriage return"},
		{"escape \x1b[2J sequence", "escape [2J sequence"},
		{"zero\u200bwidth", "zerowidth"},
		{"bidi \u202eoverride\u202c", "bidi override"},
		{"c1 \u0085control", "c1 control"},
		{"bad utf8 \xff\xfe here", "bad utf8  here"},
		{"Grüße, ¡hola! 日本", "Grüße, ¡hola! 日本"},
	}
	for _, tt := range tests {
		if got := policy.Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRulesDecision(t *testing.T) {
	p := defaultPolicy(t)
	tests := []struct {
		name      string
		facts     policy.Facts
		channel   recoup.Channel
		tone      string
		incentive recoup.Incentive
		subject   string
	}{
		{"step 1", policy.Facts{Step: 1, Plan: "pro", AllowedChannels: both()}, recoup.ChannelEmail, "friendly",
			recoup.Incentive{Kind: "none"}, "Your payment didn't go through"},
		{"step 2", policy.Facts{Step: 2, Plan: "pro", AllowedChannels: both()}, recoup.ChannelSMS, "helpful",
			recoup.Incentive{Kind: "none"}, "A reminder about your payment"},
		{"step 3 extension capped by plan", policy.Facts{Step: 3, Plan: "pro", AllowedChannels: both()}, recoup.ChannelEmail, "firm",
			recoup.Incentive{Kind: "extension_days", Value: 14}, "Action needed: your payment is still open"},
		{"step 4 discount capped by plan", policy.Facts{Step: 4, Plan: "enterprise", AllowedChannels: both()}, recoup.ChannelEmail, "urgent",
			recoup.Incentive{Kind: "discount_percent", Value: 20}, "Last reminder before your account is paused"},
		{"step 4 discount dropped when the cap is 0", policy.Facts{Step: 4, Plan: "basic", AllowedChannels: both()}, recoup.ChannelEmail, "urgent",
			recoup.Incentive{Kind: "none"}, "Last reminder before your account is paused"},
		{"unknown plan uses the default caps", policy.Facts{Step: 3, Plan: "legacy", AllowedChannels: both()}, recoup.ChannelEmail, "firm",
			recoup.Incentive{Kind: "extension_days", Value: 7}, "Action needed: your payment is still open"},
		{"later steps use the last rule", policy.Facts{Step: 9, Plan: "pro", AllowedChannels: both()}, recoup.ChannelEmail, "urgent",
			recoup.Incentive{Kind: "discount_percent", Value: 10}, "Last reminder before your account is paused"},
		{"step 0 uses the first rule", policy.Facts{Step: 0, Plan: "pro", AllowedChannels: both()}, recoup.ChannelEmail, "friendly",
			recoup.Incentive{Kind: "none"}, "Your payment didn't go through"},
		{"email rule falls back to sms", policy.Facts{Step: 1, Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelSMS}},
			recoup.ChannelSMS, "friendly", recoup.Incentive{Kind: "none"}, "Your payment didn't go through"},
		{"sms rule falls back to email", policy.Facts{Step: 2, Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelEmail}},
			recoup.ChannelEmail, "helpful", recoup.Incentive{Kind: "none"}, "A reminder about your payment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.facts.AmountDue = "€12.50"
			d, err := p.RulesDecision(tt.facts)
			if err != nil {
				t.Fatalf("RulesDecision: %v", err)
			}
			if d.Channel != tt.channel || d.Tone != tt.tone || d.Incentive != tt.incentive || d.Subject != tt.subject {
				t.Errorf("decision = channel %q tone %q incentive %+v subject %q\nwant channel %q tone %q incentive %+v subject %q",
					d.Channel, d.Tone, d.Incentive, d.Subject, tt.channel, tt.tone, tt.incentive, tt.subject)
			}
			if d.Step != tt.facts.Step || d.DecidedBy != recoup.DecidedByRules {
				t.Errorf("Step, DecidedBy = %d, %q", d.Step, d.DecidedBy)
			}
			if !strings.Contains(d.Message, "€12.50") || strings.Contains(d.Message, "{{") {
				t.Errorf("Message %q does not carry the amount due", d.Message)
			}
			if d.Rationale == "" {
				t.Error("Rationale is empty")
			}
			// A rules decision must itself pass the guardrails it stands in for.
			var a policy.Answer
			a.Channel, a.Tone, a.Subject, a.Message = string(d.Channel), d.Tone, d.Subject, d.Message
			a.Incentive.Kind, a.Incentive.Value = d.Incentive.Kind, d.Incentive.Value
			if _, v := p.Check(a, tt.facts); len(v) > 0 {
				t.Errorf("the rules decision breaks the policy: %q", v)
			}
		})
	}
}

func TestRulesDecisionWithoutChannel(t *testing.T) {
	p := defaultPolicy(t)
	for _, allowed := range [][]recoup.Channel{nil, {}} {
		d, err := p.RulesDecision(policy.Facts{Step: 4, Plan: "enterprise", AllowedChannels: allowed, AmountDue: "$1.00"})
		if err != nil {
			t.Fatalf("RulesDecision: %v", err)
		}
		if d.Channel != recoup.ChannelNone || d.Message != "" {
			t.Errorf("Channel, Message = %q, %q; want none and no message", d.Channel, d.Message)
		}
		if d.Incentive.Kind != recoup.IncentiveNone || d.Incentive.Value != 0 {
			t.Errorf("Incentive = %+v, want none: nothing is sent, so nothing is offered", d.Incentive)
		}
		if !strings.Contains(d.Rationale, "no consented, reachable channel") {
			t.Errorf("Rationale = %q", d.Rationale)
		}
	}
}

func TestRulesDecisionUsesEveryRuleInOrder(t *testing.T) {
	p := defaultPolicy(t)
	var tones []string
	for step := 1; step <= len(p.Rules); step++ {
		d, err := p.RulesDecision(policy.Facts{Step: step, Plan: "pro", AllowedChannels: both(), AmountDue: "$5.00"})
		if err != nil {
			t.Fatal(err)
		}
		tones = append(tones, d.Tone)
	}
	var want []string
	for _, r := range p.Rules {
		want = append(want, r.Tone)
	}
	if !slices.Equal(tones, want) {
		t.Errorf("tones by step = %v, want %v", tones, want)
	}
}
