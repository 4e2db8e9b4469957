package money_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/money"
)

func TestParseCurrency(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"USD", "USD", ""},
		{"usd", "USD", ""},
		{"Eur", "EUR", ""},
		{"jpy", "JPY", ""},
		{"BHD", "BHD", ""},
		{"XYZ", "", `"XYZ" is not a known ISO 4217 currency code`},
		{"ABC", "", "not a known ISO 4217"},
		{"US", "", `"US" is not a 3-letter ISO 4217 currency code`},
		{"USDD", "", "3-letter"},
		{"", "", "3-letter"},
		{"U$D", "", "ISO 4217"},
	}
	for _, tt := range tests {
		got, err := money.ParseCurrency(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseCurrency(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || got != "" {
			t.Errorf("ParseCurrency(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
		}
	}
}

func TestExponent(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{"USD", 2},
		{"usd", 2},
		{"EUR", 2},
		{"JPY", 0},
		{"KRW", 0},
		{"BHD", 3},
		{"KWD", 3},
		{"XYZ", 2}, // unknown: the common case
	}
	for _, tt := range tests {
		if got := money.Exponent(tt.code); got != tt.want {
			t.Errorf("Exponent(%q) = %d, want %d", tt.code, got, tt.want)
		}
	}
}

// normalize drops the spacing the locale data puts between symbol and number (ordinary,
// no-break or narrow no-break spaces), so the tests assert digits, separators and symbols.
func normalize(s string) string {
	return strings.NewReplacer(" ", "", "\u00a0", "", "\u202f", "").Replace(s)
}

func TestFormat(t *testing.T) {
	tests := []struct {
		minor          int64
		code, locale   string
		want           string // after normalize
		mustNotContain string
	}{
		{4900, "USD", "en-US", "$49.00", ""},
		{4900, "usd", "en", "$49.00", ""},
		{5, "USD", "en-US", "$0.05", ""},
		{123456789, "EUR", "en-GB", "€1,234,567.89", ""},
		{123456789, "EUR", "de-DE", "€1.234.567,89", ""},
		{4900, "EUR", "de-DE", "€49,00", "49.00"},
		{4900, "JPY", "ja-JP", "￥4,900", "49.00"},
		{4900, "JPY", "en-US", "¥4,900", "."},
		{12345, "BHD", "en", "BHD12.345", ""},
		{4900, "USD", "not a locale!", "$49.00", ""}, // falls back to English
	}
	for _, tt := range tests {
		got := money.Format(tt.minor, tt.code, tt.locale)
		if normalize(got) != tt.want {
			t.Errorf("Format(%d, %q, %q) = %q, want %q (spacing aside)", tt.minor, tt.code, tt.locale, got, tt.want)
		}
		if tt.mustNotContain != "" && strings.Contains(got, tt.mustNotContain) {
			t.Errorf("Format(%d, %q, %q) = %q contains %q", tt.minor, tt.code, tt.locale, got, tt.mustNotContain)
		}
	}
}

func TestFormatFrenchUsesCommaDecimals(t *testing.T) {
	got := normalize(money.Format(123456789, "EUR", "fr-FR"))
	if !strings.Contains(got, "1234567,89") || !strings.Contains(got, "€") {
		t.Errorf("Format(1234567.89 EUR, fr-FR) = %q, want the digits 1 234 567,89 and €", got)
	}
}

func TestFormatUnknownCurrency(t *testing.T) {
	if got := money.Format(4900, "xyz", "en"); got != "4900 XYZ" {
		t.Errorf("Format with an unknown currency = %q, want the raw minor units %q", got, "4900 XYZ")
	}
}
