package templates

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// MaxGreetingName is the longest customer name, in characters, that is used in a greeting.
const MaxGreetingName = 40

// GreetingName returns the first name to greet a customer with, or "" (the templates then
// use the greeting without a name) unless the name is a plain personal name: letters,
// spaces, hyphens, apostrophes and periods only, at most MaxGreetingName characters, no
// word mixing alphabets, and nothing that reads as a link, domain, email or street address.
// A company-signed email must not print "Hi www.pay-here.example," to its customer.
func GreetingName(name string) string {
	if name = DisplayName(name); name == "" {
		return ""
	}
	return strings.Fields(name)[0]
}

// DisplayName returns the customer's whole name, normalised, when it is a plain personal
// name (as GreetingName judges it), or "": the recipient's display name of an email is
// shown by the customer's mail client next to the company's sender, so it must not carry a
// link or an address either.
func DisplayName(name string) string {
	name = strings.Join(strings.Fields(norm.NFKC.String(policy.Sanitize(name))), " ")
	if name == "" || utf8.RuneCountInString(name) > MaxGreetingName {
		return ""
	}
	letters := 0
	for _, r := range name {
		switch {
		case unicode.IsLetter(r):
			letters++
		case unicode.Is(unicode.Mn, r), r == ' ', r == '-', r == '\'', r == '’', r == '.':
		default:
			return "" // digits, @, /, :, signs, emoji …
		}
	}
	if letters == 0 || policy.ContactLike(name) != "" || policy.MixesAlphabets(name) {
		return ""
	}
	if !strings.ContainsFunc(strings.Fields(name)[0], unicode.IsLetter) {
		return ""
	}
	return name
}
