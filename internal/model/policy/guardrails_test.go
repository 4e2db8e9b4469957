package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// basicFacts: a plan without discounts, amount due $49.00.
func basicFacts() policy.Facts {
	return policy.Facts{Step: 2, Plan: "basic", AllowedChannels: both(), AmountDue: "$49.00", Language: "en-US"}
}

func checkMessage(t *testing.T, p *policy.Policy, kind string, value int, subject, message string, f policy.Facts) []string {
	t.Helper()
	a := validAnswer()
	a.Incentive.Kind, a.Incentive.Value = kind, value
	if subject != "" {
		a.Subject = subject
	}
	a.Message = message
	_, v := p.Check(a, f)
	return v
}

// The model's words may not promise what the decision does not offer, threaten, or state
// figures: with "incentive: none" on a plan without discounts, every one of these is refused,
// in every shipped language, however it is disguised.
func TestCheckRefusesWhatThePolicyForbids(t *testing.T) {
	p := defaultPolicy(t)
	tests := []struct {
		name, message string
		want          string // one violation contains it
	}{
		{"a percentage off", "We will take 50% off your invoice.", "mentions a percentage"},
		{"money off in words", "We will take half off your invoice.", "mentions a discount"},
		{"a discount", "As a loyal customer you get a discount.", "mentions a discount"},
		{"a new balance", "Your balance is now $4.90.", "states an amount of money"},
		{"a balance without currency", "Your balance is now 4.90.", "states an amount or figure (\"4.90\")"},
		{"a settled balance", "Good news: you owe nothing this month.", "promises what the policy does not offer"},
		{"a waiver", "We waived this invoice.", `promises what the policy does not offer ("waived")`},
		{"a refund", "We will refund your last payment.", "promises"},
		{"a free month", "Enjoy a free month on us.", "promises"},
		{"collections", "Your account will be sent to collections.", `threatens the customer ("collections")`},
		{"legal action", "Otherwise we will take legal action.", "threatens"},
		{"a credit bureau", "We will report this to the credit bureau.", "threatens"},
		{"a court", "We may take this to court.", "threatens"},
		{"termination", "Your service will be terminated tomorrow.", "threatens"},
		{"a late fee", "A late fee applies.", "threatens"},
		{"an extension not offered", "We have extended your deadline.", "mentions more time to pay"},
		{"a number", "You have 3 days left.", "contains the number 3"},
		{"a number in words", "You have three days left.", "writes a number in words"},
		{"a currency name", "Please pay the dollars you owe.", "names a currency"},
		{"a currency code", "Please pay the EUR you owe.", "names a currency"},
		{"another amount than the amount due", "Your payment of $1,249.00 did not go through.", "states an amount"},
		{"es: a discount", "Te haremos un descuento si pagas hoy.", "mentions a discount"},
		{"es: a waiver", "Hemos condonado tu deuda.", "promises"},
		{"es: collections", "Pasaremos tu deuda a una agencia de cobro.", "threatens"},
		{"es: accents do not hide", "Te damos una prórroga.", "mentions more time to pay"},
		{"de: a discount", "Sie erhalten einen Rabatt.", "mentions a discount"},
		{"de: a compound", "Wir gewähren einen Sonderrabatt.", "mentions a discount"},
		{"de: collections", "Wir übergeben die Forderung an ein Inkassobüro.", "threatens"},
		{"de: a credit bureau", "Wir melden das der SCHUFA.", "threatens"},
		{"de: an extension", "Wir haben Ihre Frist verlängert.", "mentions more time to pay"},
		{"de: transliterated", "Wir haben Ihre Frist verlaengert.", "mentions more time to pay"},
		{"fr: a bailiff", "Nous transmettrons votre dossier à un huissier.", "threatens"},
		{"fr: a refund", "Nous vous rembourserons.", "promises"},
		{"full-width letters", "Your account goes to ｃｏｌｌｅｃｔｉｏｎｓ.", "threatens"},
		{"full-width percent", "Take ５０％ off now.", "mentions a percentage"},
		{"zero-width split", "Your account goes to col\u200blec\u200btions.", "threatens"},
		{"soft hyphen split", "We will re\u00adfund you.", "promises"},
		{"bidi controls", "We \u202ewaived\u202c it.", "promises"},
		{"hyphen split", "You get a dis-count today.", "mentions a discount"},
		{"middle-dot split", "Your account goes to col·lec·tions.", "threatens"},
		{"letter spacing", "Enjoy a f r e e month.", "spells out a word letter by letter"},
		{"a Cyrillic look-alike", "Your account goes to сollections.", "mixes alphabets"},
		{"a Greek look-alike", "We wαived it.", "mixes alphabets"},
		{"Arabic-Indic digits", "Take ٥٠٪ off.", "contains digits of another script"},
		{"mathematical letters", "Your account goes to 𝐜𝐨𝐥𝐥𝐞𝐜𝐭𝐢𝐨𝐧𝐬.", "threatens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := checkMessage(t, p, recoup.IncentiveNone, 0, "", tt.message, basicFacts())
			if !slices.ContainsFunc(v, func(x string) bool { return strings.Contains(x, tt.want) }) {
				t.Fatalf("Check(%q) = violations %q, want one containing %q", tt.message, v, tt.want)
			}
		})
	}
	// The subject is checked the same way.
	if v := checkMessage(t, p, recoup.IncentiveNone, 0, "Final notice before collections", "Please update your card.", basicFacts()); !slices.ContainsFunc(v, func(x string) bool { return strings.HasPrefix(x, "subject threatens") }) {
		t.Fatalf("subject with a threat: violations %q", v)
	}
}

// Words and figures of an incentive are fine when the decision makes exactly that offer.
func TestCheckAllowsWordsOfTheIncentiveItOffers(t *testing.T) {
	p := defaultPolicy(t)
	f := proFacts() // pro: up to 10% and 14 days
	for _, tc := range []struct {
		kind    string
		value   int
		message string
	}{
		{recoup.IncentiveDiscountPercent, 10, "Update your card this week and get a 10% discount on this invoice."},
		{recoup.IncentiveDiscountPercent, 10, "Actualiza tu tarjeta y te haremos un descuento del 10 %."},
		{recoup.IncentiveExtensionDays, 14, "We have extended your grace period by 14 days."},
		{recoup.IncentiveExtensionDays, 14, "Wir haben Ihre Frist um 14 Tage verlängert."},
	} {
		if v := checkMessage(t, p, tc.kind, tc.value, "", tc.message, f); len(v) > 0 {
			t.Errorf("%s %d, Check(%q) = violations %q, want none", tc.kind, tc.value, tc.message, v)
		}
	}
	// The same words with another value, or another kind, are refused.
	for _, tc := range []struct {
		kind    string
		value   int
		message string
		want    string
	}{
		{recoup.IncentiveDiscountPercent, 10, "Get a 20% discount on this invoice.", "contains the number 20"},
		{recoup.IncentiveDiscountPercent, 10, "Get a fifty percent discount.", "writes a number in words"},
		{recoup.IncentiveExtensionDays, 14, "Get a 14% discount.", "mentions a percentage"},
		{recoup.IncentiveDiscountPercent, 10, "We extended your grace period.", "mentions more time to pay"},
		{recoup.IncentiveDiscountPercent, 10, "Get 10% off, and we waive the fee.", "promises"},
	} {
		v := checkMessage(t, p, tc.kind, tc.value, "", tc.message, f)
		if !slices.ContainsFunc(v, func(x string) bool { return strings.Contains(x, tc.want) }) {
			t.Errorf("%s %d, Check(%q) = violations %q, want one containing %q", tc.kind, tc.value, tc.message, v, tc.want)
		}
	}
}

// Ordinary reminders in the shipped languages pass: the lists do not refuse plain text.
func TestCheckAllowsPlainRemindersInEveryLanguage(t *testing.T) {
	p := defaultPolicy(t)
	for _, msg := range []string{
		"We couldn't process your latest payment. It happens - updating your card only takes a minute.",
		"Your payment of $49.00 is still open. Please update your credit card to keep your account active.",
		"Feel free to reach out if anything is unclear; we're happy to help.",
		"This is our last reminder before your account is paused. Please double-check your card details.",
		"No hemos podido procesar tu último pago. Actualizar tu tarjeta solo lleva un minuto.",
		"Wir konnten Ihre letzte Zahlung nicht einziehen. Bitte aktualisieren Sie Ihre Kartendaten, damit Ihr Konto aktiv bleibt.",
		"Nous n'avons pas pu traiter votre dernier paiement. Mettez à jour votre carte en une minute, s'il vous plaît.",
		"Your payment didn't go through, e.g. because the card expired (i.e. nothing you did wrong).",
	} {
		if v := checkMessage(t, p, recoup.IncentiveNone, 0, "", msg, basicFacts()); len(v) > 0 {
			t.Errorf("Check(%q) = violations %q, want none", msg, v)
		}
	}
}

// Any link, domain-like token, email address or phone number is refused, whatever its ending
// and however it is written; the templates add the only links.
func TestCheckRefusesAnyLinkAddressOrPhoneNumber(t *testing.T) {
	p := defaultPolicy(t)
	for _, tc := range []struct{ message, want string }{
		{"Pay at pay.example.zip today.", "contains a link"},
		{"Pay at bit.ly/pay-now", "contains a link"},
		{"Visit example．com to pay.", "contains a link"},
		{"Visit example。com to pay.", "contains a link"},
		{"Visit ｅｘａｍｐｌｅ．ｃｏｍ to pay.", "contains a link"},
		{"Visit example . com to pay.", "contains a link"},
		{"Visit example[.]com to pay.", "contains a link"},
		{"Visit example (dot) com to pay.", "contains a link"},
		{"Visit example dot com to pay.", "contains a link"},
		{"Visit hxxp://evil to pay.", "contains a link"},
		{"Open hxxps evil to pay.", "contains a link"},
		{"Type www and our name.", "contains a link"},
		{"Visit xn--80ak6aa92e to pay.", "contains a link"},
		{"Visit пример.рф to pay.", "contains a link"},
		{"Visit recoup.museum to pay.", "contains a link"},
		{"Click ｈｔｔｐｓ：／／evil", "contains a link"},
		{"Write to billing＠corp.example", "contains an email address"},
		{"Write to billing [at] corp [dot] example", "contains an email address"},
		{"Ping @billing on social media.", "contains an email address"},
		{"Call +1 (415) 555-2671.", "contains a phone number"},
		{"Call ０８００ １２３ ４５６７.", "contains a phone number"},
		{"Call 415.555.2671.", "contains a phone number"},
	} {
		v := checkMessage(t, p, recoup.IncentiveNone, 0, "", tc.message, basicFacts())
		if !slices.ContainsFunc(v, func(x string) bool { return strings.HasPrefix(x, "message "+tc.want) }) {
			t.Errorf("Check(%q) = violations %q, want one starting %q", tc.message, v, "message "+tc.want)
		}
	}
	for _, s := range []string{"Ada Lovelace", "e.g. today", "z.B. heute", "U.S.A.", "9 a.m.", "Mary-Jane O'Neil"} {
		if c := policy.ContactLike(s); c != "" {
			t.Errorf("ContactLike(%q) = %q, want none", s, c)
		}
	}
}

func TestParseGuardrailsNamesTheBadEntry(t *testing.T) {
	base := "discount: {en: [discount]}\nextension: {en: [extend*]}\npromises: {en: [waiv*]}\nthreats: {en: [court]}\ncurrencies: {en: [dollar*]}\nnumber_words: {en: [two]}\nretry_promises: {en: [try again]}\ncard_details: {en: [new card]}\n"
	if _, err := policy.ParseGuardrails([]byte(base)); err != nil {
		t.Fatalf("ParseGuardrails(valid) = %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{strings.Replace(base, "[court]", "[co*urt]", 1), `line 4: threats.en: "co*urt" has "*" inside`},
		{strings.Replace(base, "[court]", "[c]", 1), `threats.en: "c" needs at least two letters`},
		{strings.Replace(base, "[court]", "[\"court!\"]", 1), `may hold only letters`},
		{strings.Replace(base, "threats: {en: [court]}", "threats: {english: [court]}", 1), "threats.english: not a language code"},
		{strings.Replace(base, "threats: {en: [court]}", "threats: {en: []}", 1), "threats.en: the list is empty"},
		{strings.Replace(base, "threats: {en: [court]}\n", "", 1), "threats: at least one language is required"},
		{base + "bribes: {en: [cash]}\n", "field bribes not found"},
	} {
		_, err := policy.ParseGuardrails([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "guardrails.yaml: ") {
			t.Errorf("ParseGuardrails = %v, want an error containing %q", err, tc.want)
		}
	}
}

// Without guardrails nothing the model writes is used.
func TestCheckWithoutGuardrailsRefusesText(t *testing.T) {
	p, err := policy.Parse(defaultYAML(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, v := p.Check(validAnswer(), proFacts()); len(v) == 0 || !strings.Contains(v[0], "no guardrails loaded") {
		t.Fatalf("violations %q", v)
	}
}
