package replies

import (
	"strings"
	"testing"
)

// Regression (break test): links without http(s):// or www. are masked too.
func TestMaskRemovesLinksWithoutAScheme(t *testing.T) {
	for _, in := range []string{"pay here instead: bit.ly/3xYz", "see evil-pay.example.com/in_42", "HXXPS://x.y"} {
		if got := Mask(in, 0); !strings.Contains(got, "[link]") {
			t.Errorf("Mask(%q) = %q: link kept", in, got)
		}
	}
}
