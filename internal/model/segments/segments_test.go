package segments_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/model/segments"
)

const emoji = "😀" // U+1F600: a surrogate pair in UTF-16

func TestOf(t *testing.T) {
	r := strings.Repeat
	tests := []struct {
		name string
		text string
		want segments.Count
	}{
		{"empty", "", segments.Count{Encoding: segments.GSM7, Units: 0, Segments: 0, PerSegment: 160}},
		{"one char", "a", segments.Count{Encoding: segments.GSM7, Units: 1, Segments: 1, PerSegment: 160}},

		// GSM-7 boundaries.
		{"160 GSM", r("a", 160), segments.Count{Encoding: segments.GSM7, Units: 160, Segments: 1, PerSegment: 160}},
		{"161 GSM", r("a", 161), segments.Count{Encoding: segments.GSM7, Units: 161, Segments: 2, PerSegment: 153}},
		{"306 GSM", r("a", 306), segments.Count{Encoding: segments.GSM7, Units: 306, Segments: 2, PerSegment: 153}},
		{"307 GSM", r("a", 307), segments.Count{Encoding: segments.GSM7, Units: 307, Segments: 3, PerSegment: 153}},
		{"459 GSM", r("a", 459), segments.Count{Encoding: segments.GSM7, Units: 459, Segments: 3, PerSegment: 153}},
		{"460 GSM", r("a", 460), segments.Count{Encoding: segments.GSM7, Units: 460, Segments: 4, PerSegment: 153}},

		// Extension characters count 2 septets.
		{"80 euro = 160 septets", r("€", 80), segments.Count{Encoding: segments.GSM7, Units: 160, Segments: 1, PerSegment: 160}},
		{"81 euro = 162 septets", r("€", 81), segments.Count{Encoding: segments.GSM7, Units: 162, Segments: 2, PerSegment: 153}},
		{"159 GSM + euro = 161", r("a", 159) + "€", segments.Count{Encoding: segments.GSM7, Units: 161, Segments: 2, PerSegment: 153}},
		{"158 GSM + euro = 160", r("a", 158) + "€", segments.Count{Encoding: segments.GSM7, Units: 160, Segments: 1, PerSegment: 160}},
		{"every extension char", "\f^{}\\[~]|€", segments.Count{Encoding: segments.GSM7, Units: 20, Segments: 1, PerSegment: 160}},
		// An extension pair never straddles a boundary: 152 + € + 152 = 306 septets would be
		// 2 segments by arithmetic, but the € (septets 153-154) moves to segment 2, which then
		// holds € + 151 and the last 'a' spills into segment 3.
		{"extension straddles boundary", r("a", 152) + "€" + r("a", 152), segments.Count{Encoding: segments.GSM7, Units: 306, Segments: 3, PerSegment: 153}},
		{"extension at end of segment", r("a", 151) + "€" + r("a", 153), segments.Count{Encoding: segments.GSM7, Units: 306, Segments: 2, PerSegment: 153}},

		// Which accented letters are GSM.
		{"é is basic GSM", "é", segments.Count{Encoding: segments.GSM7, Units: 1, Segments: 1, PerSegment: 160}},
		{"160 é", r("é", 160), segments.Count{Encoding: segments.GSM7, Units: 160, Segments: 1, PerSegment: 160}},
		{"ú is not GSM", "ú", segments.Count{Encoding: segments.UCS2, Units: 1, Segments: 1, PerSegment: 70}},
		{"ç is not GSM (only Ç)", "ç", segments.Count{Encoding: segments.UCS2, Units: 1, Segments: 1, PerSegment: 70}},
		{"Ç is GSM", "Ç", segments.Count{Encoding: segments.GSM7, Units: 1, Segments: 1, PerSegment: 160}},
		{"one ú turns 160 GSM chars UCS-2", r("a", 159) + "ú", segments.Count{Encoding: segments.UCS2, Units: 160, Segments: 3, PerSegment: 67}},
		{"euro in UCS-2 is one unit", r("€", 69) + "ú", segments.Count{Encoding: segments.UCS2, Units: 70, Segments: 1, PerSegment: 70}},

		// UCS-2 boundaries.
		{"70 UCS-2", r("ú", 70), segments.Count{Encoding: segments.UCS2, Units: 70, Segments: 1, PerSegment: 70}},
		{"71 UCS-2", r("ú", 71), segments.Count{Encoding: segments.UCS2, Units: 71, Segments: 2, PerSegment: 67}},
		{"134 UCS-2", r("ú", 134), segments.Count{Encoding: segments.UCS2, Units: 134, Segments: 2, PerSegment: 67}},
		{"135 UCS-2", r("ú", 135), segments.Count{Encoding: segments.UCS2, Units: 135, Segments: 3, PerSegment: 67}},

		// Surrogate pairs (emoji) count 2 code units and are never split.
		{"one emoji", emoji, segments.Count{Encoding: segments.UCS2, Units: 2, Segments: 1, PerSegment: 70}},
		{"35 emoji = 70 units", r(emoji, 35), segments.Count{Encoding: segments.UCS2, Units: 70, Segments: 1, PerSegment: 70}},
		{"35 emoji + a = 71 units", r(emoji, 35) + "a", segments.Count{Encoding: segments.UCS2, Units: 71, Segments: 2, PerSegment: 67}},
		{"68 a + emoji = 70 units", r("a", 68) + emoji, segments.Count{Encoding: segments.UCS2, Units: 70, Segments: 1, PerSegment: 70}},
		{"69 a + emoji = 71 units", r("a", 69) + emoji, segments.Count{Encoding: segments.UCS2, Units: 71, Segments: 2, PerSegment: 67}},
		// 67 emoji = 134 units = 2 × 67 by arithmetic, but a pair cannot straddle: 33 + 33 + 1.
		{"surrogate pair straddles boundary", r(emoji, 67), segments.Count{Encoding: segments.UCS2, Units: 134, Segments: 3, PerSegment: 67}},
		{"66 a + emoji + 66 a", r("a", 66) + emoji + r("a", 66), segments.Count{Encoding: segments.UCS2, Units: 134, Segments: 3, PerSegment: 67}},
		{"65 a + emoji + 67 a", r("a", 65) + emoji + r("a", 67), segments.Count{Encoding: segments.UCS2, Units: 134, Segments: 2, PerSegment: 67}},

		{"invalid UTF-8 is UCS-2", "ab\xffc", segments.Count{Encoding: segments.UCS2, Units: 4, Segments: 1, PerSegment: 70}},

		// Real messages.
		{"Spanish, GSM", "¿Señor Muñoz, puede pagar hoy? ¡Gracias!",
			segments.Count{Encoding: segments.GSM7, Units: 40, Segments: 1, PerSegment: 160}},
		{"Spanish, ó and í make it UCS-2", "Su pago de 25 € no se procesó. Actualice su método de pago aquí.",
			segments.Count{Encoding: segments.UCS2, Units: 64, Segments: 1, PerSegment: 70}},
		{"Spanish, long GSM with euro", "Hola Ana, no pudimos cobrar tu factura de 49,00 € del 3 de marzo. Actualiza tu tarjeta en el enlace: https://pay.example/abc. Si ya pagaste, ignora este mensaje. ¡Gracias!",
			segments.Count{Encoding: segments.GSM7, Units: 172, Segments: 2, PerSegment: 153}},
		{"German, umlauts and euro are GSM", "Ihre Zahlung über 49,00 € ist fehlgeschlagen. Bitte aktualisieren Sie Ihre Zahlungsdaten.",
			segments.Count{Encoding: segments.GSM7, Units: 90, Segments: 1, PerSegment: 160}},
		{"German, typographic quotes make it UCS-2", "„Zahlung fehlgeschlagen“ – bitte prüfen Sie Ihre Karte.",
			segments.Count{Encoding: segments.UCS2, Units: 55, Segments: 1, PerSegment: 70}},
		{"German, long with an en dash", "Hallo Jürgen, leider konnten wir Ihre Rechnung über 49,00 € vom 3. März nicht einziehen. Bitte aktualisieren Sie Ihre Zahlungsdaten unter https://pay.example/abc – vielen Dank für Ihr Verständnis!",
			segments.Count{Encoding: segments.UCS2, Units: 196, Segments: 3, PerSegment: 67}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := segments.Of(tt.text); got != tt.want {
				t.Errorf("Of(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
		})
	}
}

// TestGSMAlphabet checks the tables character by character against GSM 03.38.
func TestGSMAlphabet(t *testing.T) {
	basic := "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	if n := len([]rune(basic)); n != 127 {
		t.Fatalf("basic set has %d characters, want 127 (128 less ESC)", n)
	}
	for _, r := range basic {
		if n, ok := segments.GSMSeptets(r); !ok || n != 1 {
			t.Errorf("GSMSeptets(%q) = %d, %v; want 1, true", r, n, ok)
		}
	}
	for _, r := range "\f^{}\\[~]|€" {
		if n, ok := segments.GSMSeptets(r); !ok || n != 2 {
			t.Errorf("GSMSeptets(%q) = %d, %v; want 2, true", r, n, ok)
		}
	}
	for _, r := range "úíóáçÀÈÌÒÙâêôûëïÿœ`\t\x1b\u00a0–—“”‘’…😀ẞ" {
		if n, ok := segments.GSMSeptets(r); ok {
			t.Errorf("GSMSeptets(%q) = %d, true; want not GSM", r, n)
		}
	}
	if got := segments.Of(basic); got != (segments.Count{Encoding: segments.GSM7, Units: 127, Segments: 1, PerSegment: 160}) {
		t.Errorf("Of(basic set) = %+v", got)
	}
}

func TestFits(t *testing.T) {
	r := strings.Repeat
	tests := []struct {
		text string
		max  int
		want bool
	}{
		{"", 0, true},
		{"", 1, true},
		{"a", 0, false},
		{r("a", 160), 1, true},
		{r("a", 161), 1, false},
		{r("a", 161), 2, true},
		{r("a", 306), 2, true},
		{r("a", 307), 2, false},
		{r("a", 152) + "€" + r("a", 152), 2, false},
		{r(emoji, 35), 1, true},
		{r(emoji, 35) + "a", 1, false},
		{r("ú", 134), 2, true},
		{r(emoji, 67), 2, false},
	}
	for _, tt := range tests {
		if got := segments.Fits(tt.text, tt.max); got != tt.want {
			t.Errorf("Fits(%d runes, %d) = %v, want %v", len([]rune(tt.text)), tt.max, got, tt.want)
		}
	}
}
