package ingress_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/ingress"
)

// "whsec_" alone is an empty HMAC key: anyone could sign events with it.
func TestEmptyWebhookSecretKeyRefusedByIngress(t *testing.T) {
	for _, secrets := range [][]string{{"whsec_"}, {secretNew, " whsec_ "}} {
		_, err := ingress.New(ingress.Options{Secrets: secrets})
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS") || !strings.Contains(err.Error(), "empty key") {
			t.Errorf("ingress.New(%q) = %v, want an error naming WEBHOOK_SECRETS and the empty key", secrets, err)
		}
	}
}
