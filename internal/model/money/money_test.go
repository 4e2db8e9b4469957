package money_test

import (
	"strings"
	"testing"

	"github.com/bojanz/currency"
	"github.com/recoup-dunning/recoup/internal/model/money"
)

func TestParseCurrencyCanonicalisesAndRefusesMalformedCodes(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"USD", "USD", ""},
		{"usd", "USD", ""},
		{"Eur", "EUR", ""},
		{"XYZ", "", `"XYZ" is not a known ISO 4217 currency code`},
		{"ABC", "", "not a known ISO 4217"},
		{"US", "", `"US" is not a 3-letter ISO 4217 currency code`},
		{"USDD", "", "3-letter"},
		{"", "", "3-letter"},
		{"U$D", "", "not a known ISO 4217"},
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

// The exponents of ISO 4217 list one (CcyMnrUnts), where CLDR's rounding differs for some
// (PKR, for one, which CLDR rounds to whole rupees).
func TestCurrentISOCodesAcceptedWithISOExponent(t *testing.T) {
	tests := []struct {
		code string
		exp  int
	}{
		{"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"JPY", 0}, {"KRW", 0}, {"ISK", 0}, {"CLP", 0},
		{"VND", 0}, {"XAF", 0}, {"XOF", 0}, {"UGX", 0}, {"UYI", 0},
		{"KWD", 3}, {"BHD", 3}, {"OMR", 3}, {"JOD", 3}, {"TND", 3}, {"LYD", 3}, {"IQD", 3},
		{"CLF", 4}, {"UYW", 4},
		{"PKR", 2}, {"IDR", 2}, {"COP", 2}, {"HUF", 2}, {"TWD", 2}, {"MGA", 2},
		{"VES", 2}, {"VED", 2}, {"MRU", 2}, {"SLE", 2}, {"STN", 2}, {"ZWG", 2}, {"XCG", 2},
		{"XAD", 2}, {"SVC", 2}, {"CHE", 2}, {"USN", 2},
	}
	for _, tt := range tests {
		got, err := money.ParseCurrency(strings.ToLower(tt.code))
		if err != nil || got != tt.code {
			t.Errorf("ParseCurrency(%q) = %q, %v; want %q accepted", strings.ToLower(tt.code), got, err, tt.code)
		}
		if e := money.Exponent(tt.code); e != tt.exp {
			t.Errorf("Exponent(%q) = %d, want ISO 4217's %d", tt.code, e, tt.exp)
		}
	}
}

func TestPKRAmountUsesISOExponent(t *testing.T) {
	// The billing system sends 2,900.00 rupees as 290000 minor units (ISO 4217: 2 digits).
	if got, want := money.Format(290000, "PKR", "en-US"), "PKR\u00a02,900.00"; got != want {
		t.Errorf("Format(290000, PKR, en-US) = %q, want %q", got, want)
	}
}

// Every code of the library's list-one snapshot is accepted, and none of them is one this
// package calls withdrawn or without a minor unit (the two tables agree with the list).
func TestEveryCodeOnISOListOneIsAccepted(t *testing.T) {
	codes := currency.GetCurrencyCodes()
	if len(codes) < 150 {
		t.Fatalf("the library lists %d currencies; ISO 4217 list one has over 150", len(codes))
	}
	for _, c := range codes {
		if got, err := money.ParseCurrency(c); err != nil || got != c {
			t.Errorf("ParseCurrency(%q) = %q, %v; want it accepted", c, got, err)
		}
	}
}

func TestWithdrawnCurrencyRefusedNamingReplacement(t *testing.T) {
	tests := []struct{ code, want string }{
		{"VEF", "VEF was withdrawn from ISO 4217; use VES"},
		{"vef", "VEF was withdrawn from ISO 4217; use VES"},
		{"VEB", "use VES"},
		{"MRO", "use MRU"},
		{"STD", "use STN"},
		{"SLL", "use SLE"},
		{"ZWL", "use ZWG"},
		{"ZWD", "use ZWG"},
		{"HRK", "HRK was withdrawn from ISO 4217; use EUR"},
		{"BGN", "use EUR"},
		{"DEM", "use EUR"},
		{"LTL", "use EUR"},
		{"CUC", "use CUP"},
		{"ANG", "use XCG"},
		{"BYR", "use BYN"},
		{"ZMK", "use ZMW"},
		{"GHC", "use GHS"},
		{"XFO", "XFO was withdrawn from ISO 4217 and has no replacement"},
	}
	for _, tt := range tests {
		got, err := money.ParseCurrency(tt.code)
		if err == nil || got != "" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCurrency(%q) = %q, %v; want an error containing %q", tt.code, got, err, tt.want)
		}
	}
}

func TestCurrencyWithoutMinorUnitRefused(t *testing.T) {
	for _, c := range []string{"XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XSU", "XUA", "XTS", "XXX"} {
		got, err := money.ParseCurrency(c)
		if err == nil || got != "" || !strings.Contains(err.Error(), "no minor unit") {
			t.Errorf("ParseCurrency(%q) = %q, %v; want an error saying it has no minor unit", c, got, err)
		}
	}
	if _, err := money.ParseCurrency("XAU"); err == nil || !strings.Contains(err.Error(), "gold") {
		t.Errorf("ParseCurrency(XAU) error %v does not say it is gold", err)
	}
}

// What the customer reads, exactly (spaces included): CLDR's pattern, symbol, separators
// and grouping for the locale, and ISO 4217's number of decimals for the currency.
func TestFormatFollowsCLDRForTheCustomersLocale(t *testing.T) {
	const nb, nnb = "\u00a0", "\u202f"
	tests := []struct {
		minor        int64
		code, locale string
		want         string
	}{
		{2900, "USD", "en-US", "$29.00"},
		{123456789, "USD", "en-US", "$1,234,567.89"},
		{5, "USD", "en-US", "$0.05"},
		{-2900, "USD", "en-US", "-$29.00"},
		{123456789, "EUR", "en-US", "€1,234,567.89"},
		{4900, "JPY", "en-US", "¥4,900"},
		{12345, "KWD", "en-US", "KWD" + nb + "12.345"},
		{290000, "PKR", "en-US", "PKR" + nb + "2,900.00"},

		{2900, "USD", "en-GB", "US$29.00"},
		{123456789, "EUR", "en-GB", "€1,234,567.89"},
		{4900, "JPY", "en-GB", "JP¥4,900"},
		{12345, "KWD", "en-GB", "KWD" + nb + "12.345"},
		{290000, "PKR", "en-GB", "PKR" + nb + "2,900.00"},

		{1959, "USD", "es-ES", "19,59" + nb + "US$"},
		{123456789, "EUR", "es-ES", "1.234.567,89" + nb + "€"},
		{123456, "EUR", "es-ES", "1234,56" + nb + "€"}, // es groups from five digits
		{4900, "JPY", "es-ES", "4900" + nb + "¥"},
		{12345, "KWD", "es-ES", "12,345" + nb + "KWD"},
		{290000, "PKR", "es-ES", "2900,00" + nb + "PKR"},

		{2900, "USD", "de-DE", "29,00" + nb + "$"},
		{123456789, "EUR", "de-DE", "1.234.567,89" + nb + "€"},
		{4900, "JPY", "de-DE", "4.900" + nb + "¥"},
		{12345, "KWD", "de-DE", "12,345" + nb + "KWD"},
		{290000, "PKR", "de-DE", "2.900,00" + nb + "PKR"},

		{2900, "USD", "fr-FR", "29,00" + nb + "$US"},
		{123456789, "EUR", "fr-FR", "1" + nnb + "234" + nnb + "567,89" + nb + "€"},
		{4900, "JPY", "fr-FR", "4" + nnb + "900" + nb + "¥"},
		{12345, "KWD", "fr-FR", "12,345" + nb + "KWD"},
		{290000, "PKR", "fr-FR", "2" + nnb + "900,00" + nb + "PKR"},

		{2900, "USD", "ja-JP", "$29.00"},
		{123456789, "EUR", "ja-JP", "€1,234,567.89"},
		{4900, "JPY", "ja-JP", "￥4,900"},
		{12345, "KWD", "ja-JP", "KWD" + nb + "12.345"},
		{290000, "PKR", "ja-JP", "PKR" + nb + "2,900.00"},

		{123456789, "USD", "hi-IN", "$12,34,567.89"}, // lakh grouping
		{123456789, "EUR", "hi-IN", "€12,34,567.89"},
		{123456789, "JPY", "hi-IN", "JP¥12,34,56,789"},
		{123456789, "KWD", "hi-IN", "KWD" + nb + "1,23,456.789"},
		{123456789, "PKR", "hi-IN", "PKR" + nb + "12,34,567.89"},

		{123456, "CLF", "en-US", "CLF" + nb + "12.3456"},
		{2900, "usd", "en_US", "$29.00"},
	}
	for _, tt := range tests {
		if got := money.Format(tt.minor, tt.code, tt.locale); got != tt.want {
			t.Errorf("Format(%d, %q, %q) = %q, want %q", tt.minor, tt.code, tt.locale, got, tt.want)
		}
	}
}

func TestUnknownOrEmptyLocaleFormatsAsEnglish(t *testing.T) {
	for _, loc := range []string{"", "not a locale!", "xx", "und", "zz-ZZ"} {
		if got := money.Format(2900, "USD", loc); got != "$29.00" {
			t.Errorf("Format(2900, USD, %q) = %q, want the English %q", loc, got, "$29.00")
		}
	}
}

func TestFormatRefusedCurrencyShowsRawMinorUnits(t *testing.T) {
	for code, want := range map[string]string{"xyz": "4900 XYZ", "VEF": "4900 VEF"} {
		if got := money.Format(4900, code, "en"); got != want {
			t.Errorf("Format(4900, %q) = %q, want the raw minor units %q", code, got, want)
		}
	}
}
