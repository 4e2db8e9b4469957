package activities_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// Twilio reports an invalid number (21211), a landline (21614) and a recipient who replied
// STOP (21610) synchronously, as the 400 answer to the create-message call: no status
// callback follows. The send activity stores it as the callback would: the number marked
// undeliverable on the customer, or an SMS opt-out in the consent ledger (source twilio), so
// that the next run does not pick SMS again.
func TestTwilioSynchronousRefusalMarksTheCustomer(t *testing.T) {
	for _, c := range []struct {
		code   int
		optOut bool
	}{{21211, false}, {21614, false}, {21610, true}} {
		f := newFixture(t)
		f.tw.Always(fakes.TwilioError(http.StatusBadRequest, c.code, "refused"))
		if _, err := f.acts.SendSMS(context.Background(), sendInput(1, recoup.ChannelSMS)); err == nil {
			t.Fatal("want a rejection")
		}
		cust, err := f.st.GetCustomer(context.Background(), "cus_1")
		if err != nil {
			t.Fatal(err)
		}
		if c.optOut && cust.SMSConsent {
			t.Errorf("Twilio %d (recipient replied STOP): SMS consent still true", c.code)
		}
		if !c.optOut && cust.SMSUndeliverable == "" {
			t.Errorf("Twilio %d: the number is not marked undeliverable on the customer; the next run texts it again", c.code)
		}
	}
}
