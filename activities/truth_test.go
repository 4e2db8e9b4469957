package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// When the yearly budget withdraws the model's incentive, the customer must not read a text
// that announces it: such a text gives way to the rules; a text that does not mention the
// incentive is kept, without the incentive.
func TestWithdrawnIncentiveIsNotAnnouncedByTheModelsText(t *testing.T) {
	for _, tc := range []struct {
		name, message string
		wantBy        string
	}{
		{"text announces the extension", "We have extended your grace period so you can update your card.", recoup.DecidedByRules},
		{"text does not mention it", "Your card was declined. Updating it takes a minute.", recoup.DecidedByLLM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			// The pro plan allows 30 extension days a year; 25 were offered already.
			if err := f.st.SaveOffer(ctx, postgres.Offer{OfferKey: "dunning-inv_old/step-3/offer", WorkflowID: "dunning-inv_old", InvoiceID: "inv_old",
				CustomerID: "cus_1", Kind: recoup.IncentiveExtensionDays, Value: 25, ExpiresAt: now}); err != nil {
				t.Fatal(err)
			}
			f.useLLM(t, fakes.NewOpenAI(t, answer("email", "friendly", "extension_days", 14, "Your payment", tc.message)), 5*time.Second)
			d, err := f.acts.DecideStrategy(ctx, decideInput(f, t))
			if err != nil {
				t.Fatal(err)
			}
			violations := strings.Join(d.Violations, "|")
			if d.DecidedBy != tc.wantBy || d.Incentive.Kind != recoup.IncentiveNone || !strings.Contains(violations, "yearly extension_days budget") {
				t.Fatalf("decision by %s, incentive %+v, violations %q", d.DecidedBy, d.Incentive, violations)
			}
			if strings.Contains(d.Message, "extended") {
				t.Fatalf("the customer would read an extension that is not given: %q", d.Message)
			}
			if tc.wantBy == recoup.DecidedByRules && !strings.Contains(violations, "mentions more time to pay") {
				t.Fatalf("violations %q do not say why the text was refused", violations)
			}
		})
	}
}

// A customer whose name is a link is greeted without the name in the email that goes out.
func TestSendGreetsACustomerNamedLikeALinkWithoutTheName(t *testing.T) {
	f := newFixture(t)
	f.customer(t, postgres.Customer{CustomerID: "cus_1", Name: "www.pay-here.example", UpdatedAt: time.Now().Add(time.Minute)})
	if _, err := f.acts.SendEmail(context.Background(), sendInput(1, recoup.ChannelEmail)); err != nil {
		t.Fatal(err)
	}
	text := f.sg.Last().JSON["content"].([]any)[0].(map[string]any)["value"].(string)
	if !strings.HasPrefix(text, "Hello,") || strings.Contains(text, "pay-here") {
		t.Fatalf("email text:\n%s", text)
	}
}
