package declines_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/declines"
	"github.com/recoup-dunning/recoup/prompts"
)

func shipped(t *testing.T) *declines.Table {
	t.Helper()
	data, err := prompts.Default.ReadFile(declines.File)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := declines.Parse(data)
	if err != nil {
		t.Fatalf("shipped declines.yaml: %v", err)
	}
	return tab
}

func TestShippedTableClassifiesEveryNamespacesCodes(t *testing.T) {
	tab := shipped(t)
	cases := map[string]recoup.DeclineClass{
		// bare codes: what billing sends today, looked up in the default namespace (stripe)
		"expired_card": recoup.DeclineUpdatePaymentMethod, "card_declined": recoup.DeclineGenericSoft,
		"  Insufficient_Funds ": recoup.DeclineInsufficientFunds,
		// stripe
		"stripe:expired_card": recoup.DeclineUpdatePaymentMethod, "stripe:incorrect_number": recoup.DeclineUpdatePaymentMethod,
		"stripe:invalid_account": recoup.DeclineUpdatePaymentMethod, "stripe:lost_card": recoup.DeclineDoNotRetry,
		"stripe:stolen_card": recoup.DeclineDoNotRetry, "stripe:pickup_card": recoup.DeclineDoNotRetry,
		"stripe:fraudulent": recoup.DeclineDoNotRetry, "stripe:revocation_of_authorization": recoup.DeclineDoNotRetry,
		"stripe:insufficient_funds": recoup.DeclineInsufficientFunds, "stripe:authentication_required": recoup.DeclineAuthenticationRequired,
		"stripe:issuer_not_available": recoup.DeclineIssuerUnavailable, "stripe:try_again_later": recoup.DeclineIssuerUnavailable,
		"stripe:processing_error": recoup.DeclineIssuerUnavailable, "stripe:do_not_honor": recoup.DeclineGenericSoft,
		"stripe:generic_decline": recoup.DeclineGenericSoft,
		// advice codes
		"stripe_advice:do_not_try_again": recoup.DeclineDoNotRetry, "stripe_advice:confirm_card_data": recoup.DeclineUpdatePaymentMethod,
		"mastercard_mac:01": recoup.DeclineUpdatePaymentMethod, "mastercard_mac:02": recoup.DeclineIssuerUnavailable,
		"mastercard_mac:03": recoup.DeclineDoNotRetry, "mastercard_mac:21": recoup.DeclineDoNotRetry,
		"visa_category:1": recoup.DeclineDoNotRetry, "visa_category:2": recoup.DeclineGenericSoft,
		"visa_category:3": recoup.DeclineUpdatePaymentMethod,
		// adyen, by code and by name as Adyen writes it
		"adyen:6": recoup.DeclineUpdatePaymentMethod, "adyen:Expired Card": recoup.DeclineUpdatePaymentMethod,
		"adyen:12": recoup.DeclineInsufficientFunds, "adyen:Not enough balance": recoup.DeclineInsufficientFunds,
		"adyen:FRAUD-CANCELLED": recoup.DeclineDoNotRetry, "adyen:38": recoup.DeclineAuthenticationRequired,
		"adyen:Issuer Unavailable": recoup.DeclineIssuerUnavailable, "adyen:Refused": recoup.DeclineGenericSoft,
		// braintree
		"braintree:2000": recoup.DeclineGenericSoft, "braintree:2001": recoup.DeclineInsufficientFunds,
		"braintree:2004": recoup.DeclineUpdatePaymentMethod, "braintree:2013": recoup.DeclineDoNotRetry,
		"braintree:2099": recoup.DeclineAuthenticationRequired, "braintree:3000": recoup.DeclineIssuerUnavailable,
		// ISO 8583
		"iso8583:05": recoup.DeclineGenericSoft, "iso8583:14": recoup.DeclineUpdatePaymentMethod,
		"iso8583:41": recoup.DeclineDoNotRetry, "iso8583:43": recoup.DeclineDoNotRetry, "iso8583:51": recoup.DeclineInsufficientFunds,
		"iso8583:54": recoup.DeclineUpdatePaymentMethod, "iso8583:57": recoup.DeclineUpdatePaymentMethod,
		"iso8583:59": recoup.DeclineDoNotRetry, "iso8583:62": recoup.DeclineUpdatePaymentMethod,
		"iso8583:65": recoup.DeclineAuthenticationRequired, "iso8583:91": recoup.DeclineIssuerUnavailable,
		"iso8583:96": recoup.DeclineIssuerUnavailable, "iso8583:1A": recoup.DeclineAuthenticationRequired,
		"ISO8583:1a": recoup.DeclineAuthenticationRequired,
	}
	for code, want := range cases {
		got := tab.Classify(code)
		if got.Class != want || !got.Known {
			t.Errorf("Classify(%q) = %+v, want %s (known)", code, got, want)
		}
	}
	if tab.Version == "" || len(tab.Hash) != 12 {
		t.Errorf("version %q, hash %q: want the file's version and a 12-digit content hash", tab.Version, tab.Hash)
	}
}

func TestUnknownCodesAreUnknownWithABoundedNamespace(t *testing.T) {
	tab := shipped(t)
	for code, ns := range map[string]string{
		"": "stripe", "some_new_code": "stripe", "adyen:999": "adyen", "iso8583:": "iso8583",
		"madeup:expired_card": "other", "worldpay:REFUSED": "other",
	} {
		got := tab.Classify(code)
		if got.Class != recoup.DeclineUnknown || got.Known || got.Namespace != ns {
			t.Errorf("Classify(%q) = %+v, want unknown in namespace %s", code, got, ns)
		}
	}
	if p := tab.Plan(recoup.DeclineUnknown); p.PromiseRetry || p.FirstMessage != declines.FirstAtOnce {
		t.Errorf("unknown's plan %+v: want the safe plan (at once, no retry promised)", p)
	}
}

func TestShippedPlansFollowTheirClass(t *testing.T) {
	tab := shipped(t)
	if p := tab.Plan(recoup.DeclineDoNotRetry); p.PromiseRetry {
		t.Error("do_not_retry may promise a retry")
	}
	if p := tab.Plan(recoup.DeclineAuthenticationRequired); p.Link != declines.LinkAuthentication {
		t.Errorf("authentication_required leads with %s", p.Link)
	}
	if p := tab.Plan(recoup.DeclineIssuerUnavailable); p.FirstMessage != declines.FirstAfterFailedRetry || p.PromiseRetry {
		t.Errorf("issuer_unavailable plan %+v: want no message until a retry failed, and no retry promised", p)
	}
	if m, ok := tab.Plan(recoup.DeclineDoNotRetry).RulesMessage("de"); !ok || !strings.Contains(m, "{{.AmountDue}}") {
		t.Errorf("do_not_retry's German rules message %q", m)
	}
}

const valid = `version: "1"
default_namespace: stripe
classes:
  update_payment_method: {first_message: at_once, link: payment_method, guidance: "x"}
  do_not_retry: {first_message: at_once, link: payment_method, guidance: "x"}
  insufficient_funds: {first_message: at_once, link: payment_method, promise_retry: true, guidance: "x"}
  authentication_required: {first_message: at_once, link: authentication, guidance: "x"}
  issuer_unavailable: {first_message: after_failed_retry, link: payment_method, guidance: "x"}
  generic_soft: {first_message: at_once, link: payment_method, guidance: "x"}
  unknown: {first_message: at_once, link: payment_method, guidance: "x"}
codes:
  stripe:
    update_payment_method: [expired_card]
    do_not_retry: [lost_card]
`

func TestBadTablesAreRefusedNamingTheLineAndKey(t *testing.T) {
	if _, err := declines.Parse([]byte(valid)); err != nil {
		t.Fatalf("valid table refused: %v", err)
	}
	cases := []struct{ name, from, to, want string }{
		{"unknown class", "do_not_retry: [lost_card]", "hard_decline: [lost_card]", `declines.yaml:14: codes.stripe.hard_decline: unknown class`},
		{"duplicate code", "do_not_retry: [lost_card]", "do_not_retry: [lost_card, Expired-Card]", `declines.yaml:14: codes.stripe: "Expired-Card" is listed twice (first at line 13)`},
		{"bad link", "link: authentication", "link: 3ds", `declines.yaml:7: classes.authentication_required.link: "3ds" is not`},
		{"bad first message", "first_message: after_failed_retry", "first_message: later", `classes.issuer_unavailable.first_message: "later"`},
		{"missing plan", "  unknown: {first_message: at_once, link: payment_method, guidance: \"x\"}\n", "", "classes.unknown: the class has no plan"},
		{"no version", `version: "1"`, "", "version: required"},
		{"default namespace absent", "default_namespace: stripe", "default_namespace: adyen", `default_namespace: "adyen" is not a namespace`},
		{"unknown field", "version:", "verison:", "field verison not found"},
	}
	for _, c := range cases {
		_, err := declines.Parse([]byte(strings.Replace(valid, c.from, c.to, 1)))
		var pe *declines.ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestWithoutATableEveryCodeIsUnknownWithTheSafePlan(t *testing.T) {
	var tab *declines.Table
	if c := tab.Classify("stripe:expired_card"); c.Class != recoup.DeclineUnknown || c.Known {
		t.Errorf("Classify on no table = %+v", c)
	}
	if p := tab.Plan(recoup.DeclineDoNotRetry); p.PromiseRetry || p.FirstMessage != declines.FirstAtOnce || p.Link != declines.LinkPaymentMethod {
		t.Errorf("Plan on no table = %+v", p)
	}
}
