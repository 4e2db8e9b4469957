package experiment

import (
	"fmt"
	"math"
	"strconv"

	"github.com/recoup-dunning/recoup/internal/model/money"
)

// Major renders an amount in minor units as a plain decimal in the currency's major unit,
// with the currency's own number of decimals (ISO 4217: JPY 0, USD 2, KWD 3), rounded half
// away from zero: Major(1234, "USD") = "12.34", Major(1234, "JPY") = "1234", Major(1234,
// "KWD") = "1.234". An unknown or empty currency is taken to have 2 decimals.
func Major(minor float64, currency string) string {
	exp := 2
	if currency != "" {
		exp = money.Exponent(currency)
	}
	v := math.Round(minor) / math.Pow10(exp)
	return strconv.FormatFloat(v, 'f', exp, 64)
}

// Percent renders a fraction as a percentage with one decimal ("30.0%").
func Percent(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }
