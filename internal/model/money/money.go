// Package money validates currency codes against the current ISO 4217 list and formats
// amounts given in ISO 4217 minor units by the CLDR rules of the customer's locale.
//
// Codes and exponents come from github.com/bojanz/currency, whose table is generated from
// ISO 4217 list one (the current list, published by SIX for ISO) and whose exponents are
// ISO's CcyMnrUnts, not CLDR's rounding (PKR is 2 here; CLDR rounds it to 0). Formatting
// uses the same library's CLDR data. The tables in this file cover what that list does not
// say in a usable way: codes withdrawn from it (ISO 4217 list three) and its entries whose
// minor unit is "N.A.".
package money

import (
	"fmt"
	"strings"

	"github.com/bojanz/currency"
	"golang.org/x/text/language"
)

// withdrawn maps codes removed from ISO 4217 list one to the current code that replaced
// them ("" when nothing did). Source: ISO 4217 list three (historic denominations) and the
// amendments that brought in VES, MRU, STN, SLE, ZWG and XCG and retired HRK, BGN and CUC
// (checked against bojanz/currency v1.5.1's list-one snapshot and SIX's list one of
// 2024-06-25). Chains are collapsed to today's code: VEB→VEF→VES gives VES.
var withdrawn = map[string]string{
	"ADP": "EUR", "AFA": "AFN", "ANG": "XCG", "AOK": "AOA", "AON": "AOA", "AOR": "AOA",
	"ARA": "ARS", "ARP": "ARS", "ATS": "EUR", "AZM": "AZN", "BEF": "EUR", "BGL": "EUR",
	"BGN": "EUR", "BOP": "BOB", "BRB": "BRL", "BRC": "BRL", "BRE": "BRL", "BRN": "BRL",
	"BRR": "BRL", "BYB": "BYN", "BYR": "BYN", "CSD": "RSD", "CSK": "CZK", "CUC": "CUP",
	"CYP": "EUR", "DDM": "EUR", "DEM": "EUR", "ECS": "USD", "ECV": "USD", "EEK": "EUR",
	"ESP": "EUR", "FIM": "EUR", "FRF": "EUR", "GEK": "GEL", "GHC": "GHS", "GRD": "EUR",
	"GWP": "XOF", "HRD": "EUR", "HRK": "EUR", "IEP": "EUR", "ITL": "EUR", "LTL": "EUR",
	"LTT": "EUR", "LUF": "EUR", "LVL": "EUR", "LVR": "EUR", "MGF": "MGA", "MRO": "MRU",
	"MTL": "EUR", "MXP": "MXN", "MZM": "MZN", "NIC": "NIO", "NLG": "EUR", "PEI": "PEN",
	"PES": "PEN", "PLZ": "PLN", "PTE": "EUR", "ROL": "RON", "RUR": "RUB", "SDD": "SDG",
	"SIT": "EUR", "SKK": "EUR", "SLL": "SLE", "SRG": "SRD", "STD": "STN", "SUR": "RUB",
	"TJR": "TJS", "TMM": "TMT", "TPE": "USD", "TRL": "TRY", "UAK": "UAH", "UYP": "UYU",
	"VEB": "VES", "VEF": "VES", "XEU": "EUR", "XFO": "", "XFU": "", "YUD": "RSD",
	"YUM": "RSD", "YUN": "RSD", "ZAL": "ZAR", "ZMK": "ZMW", "ZRN": "CDF", "ZRZ": "CDF",
	"ZWD": "ZWG", "ZWL": "ZWG", "ZWN": "ZWG", "ZWR": "ZWG",
}

// noMinorUnit lists the ISO 4217 list one entries whose minor unit is "N.A.": they are no
// money a customer owes, and an amount in their minor units has no meaning.
var noMinorUnit = map[string]string{
	"XAG": "silver", "XAU": "gold", "XPD": "palladium", "XPT": "platinum",
	"XBA": "a bond-market unit", "XBB": "a bond-market unit", "XBC": "a bond-market unit",
	"XBD": "a bond-market unit", "XDR": "the IMF's special drawing right",
	"XSU": "the ALBA unit of account (Sucre)", "XUA": "the ADB unit of account",
	"XTS": "reserved for testing", "XXX": `"no currency"`,
}

// ParseCurrency returns the canonical upper-case code of a currency on the current
// ISO 4217 list, or an error saying why the code is refused (naming the replacement of a
// withdrawn code).
func ParseCurrency(code string) (string, error) {
	if len(code) != 3 {
		return "", fmt.Errorf("%q is not a 3-letter ISO 4217 currency code", code)
	}
	c := strings.ToUpper(code)
	if repl, ok := withdrawn[c]; ok {
		if repl == "" {
			return "", fmt.Errorf("%s was withdrawn from ISO 4217 and has no replacement", c)
		}
		return "", fmt.Errorf("%s was withdrawn from ISO 4217; use %s", c, repl)
	}
	if what, ok := noMinorUnit[c]; ok {
		return "", fmt.Errorf("%s is %s, which has no minor unit in ISO 4217, so it cannot be an amount owed", c, what)
	}
	if _, ok := currency.GetDigits(c); !ok {
		return "", fmt.Errorf("%q is not a known ISO 4217 currency code", code)
	}
	return c, nil
}

// Exponent returns the ISO 4217 minor-unit digits of a current currency (2 for USD and
// PKR, 0 for JPY, 3 for KWD, 4 for CLF); 2 for a code ParseCurrency refuses.
func Exponent(code string) int {
	c, err := ParseCurrency(code)
	if err != nil {
		return 2
	}
	d, _ := currency.GetDigits(c)
	return int(d)
}

// Format renders an amount in ISO 4217 minor units by the CLDR rules of a BCP 47 locale,
// e.g. 4900 USD en-US → "$49.00", 1959 USD es-ES → "19,59 US$". An empty or unknown locale
// is formatted as English; a refused currency as the raw minor units and code.
func Format(minor int64, code, locale string) string {
	c, err := ParseCurrency(code)
	if err != nil {
		return fmt.Sprintf("%d %s", minor, strings.ToUpper(code))
	}
	amount, err := currency.NewAmountFromInt64(minor, c)
	if err != nil { // unreachable: ParseCurrency accepted c
		return fmt.Sprintf("%d %s", minor, c)
	}
	f := currency.NewFormatter(cldrLocale(locale))
	d, _ := currency.GetDigits(c)
	f.MinDigits, f.MaxDigits = d, d
	return f.Format(amount)
}

// cldrLocale turns a BCP 47 tag into the library's locale, keeping only language, script
// and region; anything unparsable is English.
func cldrLocale(s string) currency.Locale {
	tag, err := language.Parse(strings.ReplaceAll(s, "_", "-"))
	if err != nil || s == "" {
		return currency.Locale{Language: "en"}
	}
	base, script, region := tag.Raw()
	l := currency.Locale{Language: base.String()}
	if l.Language == "und" {
		l.Language = "en"
	}
	if sc := script.String(); sc != "Zzzz" {
		l.Script = sc
	}
	if r := region.String(); r != "ZZ" {
		l.Territory = r
	}
	return l
}
