package templates_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// rulesFor is the rules' decision for a step of a run whose failure has code, in lang, after
// failures payment failures.
func rulesFor(t *testing.T, s *templates.Set, code, lang string, step, failures int) recoup.Decision {
	t.Helper()
	df, _ := s.Decline(code, step, failures)
	d, err := s.Policy.RulesDecision(policy.Facts{Step: step, Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS},
		AmountDue: "$49.00", Language: lang, Decline: df})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRulesFollowTheDeclineClassesPlan(t *testing.T) {
	s := mustLoad(t)
	generic := rulesFor(t, s, "card_declined", "en", 1, 1)
	cases := []struct {
		code, lang string
		class      recoup.DeclineClass
		contains   string
	}{
		{"stripe:stolen_card", "en", recoup.DeclineDoNotRetry, "Please use a different card or payment method."},
		{"iso8583:43", "de", recoup.DeclineDoNotRetry, "Bitte verwenden Sie eine andere Karte"},
		{"expired_card", "es", recoup.DeclineUpdatePaymentMethod, "anade una nueva tarjeta"},
		{"braintree:2099", "en", recoup.DeclineAuthenticationRequired, "Your bank needs you to confirm the payment of $49.00"},
		{"adyen:12", "en", recoup.DeclineInsufficientFunds, strings.SplitN(generic.Message, ".", 2)[0]},
		{"no_such_code", "en", recoup.DeclineUnknown, strings.SplitN(generic.Message, ".", 2)[0]},
	}
	for _, c := range cases {
		d := rulesFor(t, s, c.code, c.lang, 1, 1)
		if d.DeclineClass != c.class || !strings.Contains(d.Message, c.contains) || !d.Channel.Valid() {
			t.Errorf("%s (%s): class %s, channel %s, message %q; want class %s and a message containing %q", c.code, c.lang, d.DeclineClass, d.Channel, d.Message, c.class, c.contains)
		}
	}
	if generic.DeclineClass != recoup.DeclineGenericSoft {
		t.Errorf("card_declined: class %s, want generic_soft", generic.DeclineClass)
	}
}

func TestIssuerUnavailableSendsNothingUntilARetryFailed(t *testing.T) {
	s := mustLoad(t)
	d := rulesFor(t, s, "stripe:issuer_not_available", "en", 1, 1)
	if d.Channel != recoup.ChannelNone || !strings.Contains(d.Rationale, "until a retry of the payment has failed") {
		t.Errorf("before a failed retry: channel %s, rationale %q; want nothing sent and why", d.Channel, d.Rationale)
	}
	d = rulesFor(t, s, "stripe:issuer_not_available", "en", 2, 2)
	if !d.Channel.Valid() || d.DeclineClass != recoup.DeclineIssuerUnavailable {
		t.Errorf("after a failed retry: channel %s, class %s; want a message", d.Channel, d.DeclineClass)
	}
	// Billing may never report a retry: the wait is for step 1 only, step 2 sends anyway.
	d = rulesFor(t, s, "stripe:issuer_not_available", "en", 2, 1)
	if !d.Channel.Valid() || d.DeclineClass != recoup.DeclineIssuerUnavailable {
		t.Errorf("step 2, no failed retry: channel %s, class %s (%s); want a message", d.Channel, d.DeclineClass, d.Rationale)
	}
}

// answer is a model answer on email with the given message.
func answer(msg string) policy.Answer {
	a := policy.Answer{Channel: "email", Tone: "friendly", Subject: "Your payment", Message: msg, Rationale: "r"}
	a.Incentive.Kind = recoup.IncentiveNone
	return a
}

func TestModelTextContradictingTheDeclineClassIsRefused(t *testing.T) {
	s := mustLoad(t)
	check := func(code, msg string) []string {
		df, _ := s.Decline(code, 2, 2)
		_, v := s.Policy.Check(answer(msg), policy.Facts{Step: 1, Plan: "pro", AllowedChannels: []recoup.Channel{recoup.ChannelEmail},
			AmountDue: "$49.00", Language: "en", Decline: df})
		return v
	}
	refused := []struct{ code, msg, want string }{
		{"stripe:lost_card", "Your payment did not go through. We'll try to collect it tomorrow, no action needed.", `says the payment will be tried again ("well try") but decline class do_not_retry promises no retry`},
		{"stripe:fraudulent", "We will automatically retry the charge.", "decline class do_not_retry promises no retry"},
		{"iso8583:91", "Your bank was unavailable; we will retry soon.", "decline class issuer_unavailable promises no retry"},
		{"iso8583:1A", "Your card has expired: please update your card.", `asks for card details ("expired") but decline class authentication_required`},
		{"stripe:authentication_required", "Bitte hinterlegen Sie eine neue Karte.", `asks for card details ("neue karte")`},
		{"adyen:Cancelled", "Volveremos a intentar el cobro.", "decline class unknown promises no retry"},
	}
	for _, c := range refused {
		if v := check(c.code, c.msg); !strings.Contains(strings.Join(v, "; "), c.want) {
			t.Errorf("%s %q: violations %v, want one containing %q", c.code, c.msg, v, c.want)
		}
	}
	allowed := []struct{ code, msg string }{
		{"stripe:insufficient_funds", "We'll try the payment again in a few days, or you can pay now."},
		{"stripe:authentication_required", "Your bank asks you to confirm this payment. It only takes a moment."},
		{"stripe:expired_card", "Your card has expired. Please add a new card."},
	}
	for _, c := range allowed {
		if v := check(c.code, c.msg); len(v) > 0 {
			t.Errorf("%s %q refused: %v", c.code, c.msg, v)
		}
	}
}

func TestLintRefusesABadDeclineTable(t *testing.T) {
	cases := []struct {
		name       string
		from, to   string
		file, want string
	}{
		{"unknown class", "    insufficient_funds: [insufficient_funds,", "    broke: [insufficient_funds,", "declines.yaml", "codes.stripe.broke: unknown class"},
		{"code twice", "generic_soft: [card_declined,", "generic_soft: [expired_card, card_declined,", "declines.yaml", `codes.stripe: "expired_card" is listed twice`},
		{"class message promising a retry", "Please use a different card or payment method.", "We will try again tomorrow.", "declines.yaml",
			"classes.do_not_retry.messages.en says the payment will be tried again"},
		{"class message talking card details", "It only takes a moment.\"", "Please update your card.\"", "declines.yaml",
			"classes.authentication_required.messages.en asks for card details"},
		{"no version", `version: "2026-12-01.1"`, "", "declines.yaml", "version: required"},
	}
	for _, c := range cases {
		m := shipped(t)
		edit(t, m, "declines.yaml", c.from, c.to)
		got := strings.Join(problems(t, m), "\n")
		if !strings.Contains(got, c.file) || !strings.Contains(got, c.want) {
			t.Errorf("%s: problems\n%s\nwant one in %s containing %q", c.name, got, c.file, c.want)
		}
	}
}

func TestAPromptSetWithoutDeclinesYamlUsesTheShippedTable(t *testing.T) {
	m := shipped(t)
	delete(m, "declines.yaml")
	s, err := templates.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Declines.Classify("stripe:expired_card"); c.Class != recoup.DeclineUpdatePaymentMethod {
		t.Errorf("classified %+v with the shipped table", c)
	}
}

func TestThePromptCarriesTheDeclineClassAndItsPlan(t *testing.T) {
	s := mustLoad(t)
	for class, want := range map[recoup.DeclineClass][]string{
		recoup.DeclineDoNotRetry:             {"decline class do_not_retry", "Never write that the payment will be tried again", "update their payment method"},
		recoup.DeclineAuthenticationRequired: {"decline class authentication_required", "confirm the payment with their bank"},
	} {
		_, user, err := s.Prompt("", s.WithDecline(templates.PromptData{Language: "en", AllowedChannels: []string{"email"}}, class))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(user, w) {
				t.Errorf("%s: the user prompt lacks %q:\n%s", class, w, user)
			}
		}
	}
	_, user, _ := s.Prompt("", s.WithDecline(templates.PromptData{Language: "en"}, recoup.DeclineInsufficientFunds))
	if strings.Contains(user, "Never write that the payment will be tried again") {
		t.Error("insufficient_funds (may promise a retry) is told never to")
	}
}

func TestTheAuthenticationClassesLinkAsksToConfirmThePayment(t *testing.T) {
	s := mustLoad(t)
	d := templates.MessageData{Message: "m", AmountDue: "$1.00", PaymentURL: "https://pay.example/l/x", UnsubscribeURL: "https://pay.example/u/x", Language: "en", Link: "authentication"}
	_, text, html, err := s.Email(d)
	if err != nil || !strings.Contains(text, "Confirm your payment: https://pay.example/l/x") || !strings.Contains(html, ">Confirm your payment</a>") {
		t.Errorf("authentication link: %v\n%s\n%s", err, text, html)
	}
	d.Link = ""
	if _, text, _, _ = s.Email(d); !strings.Contains(text, "Update your payment details: https://pay.example/l/x") {
		t.Errorf("payment method link:\n%s", text)
	}
}
