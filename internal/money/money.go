// Package money validates ISO 4217 currency codes and formats amounts given in minor units
// (cents) with the currency's own exponent, using golang.org/x/text's currency tables.
package money

import (
	"fmt"
	"math"
	"strings"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ParseCurrency returns the canonical upper-case ISO 4217 code, or an error for an
// unknown code.
func ParseCurrency(code string) (string, error) {
	if len(code) != 3 {
		return "", fmt.Errorf("%q is not a 3-letter ISO 4217 currency code", code)
	}
	u, err := currency.ParseISO(code)
	if err != nil {
		return "", fmt.Errorf("%q is not a known ISO 4217 currency code", code)
	}
	return u.String(), nil
}

// Exponent returns the number of minor-unit digits of a currency (2 for USD, 0 for JPY).
func Exponent(code string) int {
	u, err := currency.ParseISO(code)
	if err != nil {
		return 2
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale
}

// Format renders an amount in minor units for a locale, e.g. 4900 USD en → "$49.00".
func Format(minor int64, code, locale string) string {
	u, err := currency.ParseISO(code)
	if err != nil {
		return fmt.Sprintf("%d %s", minor, strings.ToUpper(code))
	}
	tag, err := language.Parse(locale)
	if err != nil {
		tag = language.English
	}
	scale, _ := currency.Standard.Rounding(u)
	amount := float64(minor) / math.Pow10(scale)
	return message.NewPrinter(tag).Sprint(currency.Symbol(u.Amount(amount)))
}
