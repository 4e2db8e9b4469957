package workflows_test

import (
	"testing"

	"github.com/recoup-dunning/recoup"
)

// issuer_unavailable's plan (after_failed_retry) sends nothing while the run has
// seen only its first failure. When billing never retries (no payment.retry_failed ever
// comes; the executor off, or its payment dropped), every step stays silent and the run
// ends exhausted: the invoice is written off without the customer ever hearing of it.
func TestIssuerUnavailableWithoutARetryStillTellsTheCustomerBeforeExhausting(t *testing.T) {
	w := issuerUnavailableWorld(t)
	res, st := w.run()
	if res.Status == recoup.StatusExhausted && len(w.sends) == 0 {
		t.Fatalf("run %s after %d decisions (%d silent), %d messages sent: the customer was never told before the dunning gave up",
			res.Status, len(st.Decisions), len(st.Decisions), len(w.sends))
	}
}
