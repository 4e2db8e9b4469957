package templates_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// A customer name is printed in the greeting of a company-signed email only when it is a
// plain personal name; a name that is a link, an address, a domain or a phone number gets
// the greeting without a name.
func TestGreetingNameOnlyForPlainPersonalNames(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"Ada Lovelace", "Ada"},
		{"  Ada   Lovelace ", "Ada"},
		{"Lucía", "Lucía"},
		{"Mary-Jane O'Neil", "Mary-Jane"},
		{"José Ñúñez", "José"},
		{"Dr. Ada King", "Dr."},
		{"Ｊｏｎａｓ", "Jonas"}, // full-width letters, as plain ones
		{"Анна Каренина", "Анна"},
		{"", ""},
		{"https://pay-here.example", ""},
		{"www.pay-here.example", ""},
		{"pay-here.example", ""},
		{"Ada Lovelace pay.example.zip", ""},
		{"ada.lovelace", ""},
		{"ada@example.com", ""},
		{"Ada (ada＠example．com)", ""},
		{"221B Baker Street", ""},
		{"Baker St. 221", ""},
		{"+1 415 555 0199", ""},
		{"Ada: click here", ""},
		{"Ada/Team", ""},
		{"Ada <script>", ""},
		{"Ada 😀", ""},
		{"hxxp evil", ""},
		{"www Ada", ""},
		{"Аda", ""}, // Cyrillic А with Latin da
		{strings.Repeat("Ada ", 11), ""},
		{"-- .", ""},
		{"Ada\u202e Lovelace", "Ada"}, // bidi control removed
	} {
		if got := templates.GreetingName(tc.name); got != tc.want {
			t.Errorf("GreetingName(%q) = %q, want %q", tc.name, got, tc.want)
		}
		// The email's recipient display name follows the same rule, whole.
		if got := templates.DisplayName(tc.name); (got == "") != (tc.want == "") || (got != "" && !strings.HasPrefix(got, tc.want)) {
			t.Errorf("DisplayName(%q) = %q; want a name starting %q, or none", tc.name, got, tc.want)
		}
	}
	if got := templates.DisplayName("  Ada   Lovelace "); got != "Ada Lovelace" {
		t.Errorf("DisplayName = %q, want the whole name normalised", got)
	}
}

// What the customer reads: an email to a customer whose name is a link greets without it.
func TestEmailToACustomerNamedLikeALinkGreetsWithoutTheName(t *testing.T) {
	s := mustLoad(t)
	for _, lang := range []string{"en", "es", "de"} {
		d := message(lang, templates.Incentive{})
		d.FirstName = "www.pay-here.example"
		_, text, html, err := s.Email(d)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text+html, "pay-here") {
			t.Errorf("%s email prints the name: %s", lang, text)
		}
		if !strings.Contains(text, map[string]string{"en": "Hello,", "es": "Hola:", "de": "Guten Tag,"}[lang]) {
			t.Errorf("%s email does not use the greeting without a name: %s", lang, text)
		}
	}
}
