package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

// twilioRejection is Twilio's answer to a number it refuses (code 21211), with the status
// a test chooses.
func twilioRejection(status int) fakes.Response {
	return fakes.TwilioError(status, 21211, "The 'To' number is not a valid phone number.")
}

// smsBodies returns the bodies of the SMS the Twilio fake accepted.
func smsBodies(tw *fakes.Twilio) []string {
	var bodies []string
	for _, r := range tw.Requests() {
		if r.Status/100 == 2 {
			bodies = append(bodies, r.Form.Get("Body"))
		}
	}
	return bodies
}

// modelRequest returns the JSON body of the i-th request the OpenAI fake received.
func modelRequest(t *testing.T, o *fakes.OpenAI, i int) map[string]any {
	t.Helper()
	reqs := o.Requests()
	if len(reqs) <= i {
		t.Fatalf("the model received %d requests, want at least %d", len(reqs), i+1)
	}
	return reqs[i].JSON
}

type fixture struct {
	acts *activities.DunningActivities
	det  *activities.DetectorActivities // shares the Base of acts
	st   *postgres.Store
	sg   *fakes.SendGrid
	tw   *fakes.Twilio
}

// newFixture returns activities on a fresh PostgreSQL schema with the real SendGrid and
// Twilio clients pointed at fakes, and one customer (cus_1) who consented to both.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := fakes.MustStore(t)
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, sg: fakes.NewSendGrid(t), tw: fakes.NewTwilio(t)}
	em, err := sendgrid.New(sendgrid.Config{APIKey: "SG.test-key", BaseURL: f.sg.URL, FromEmail: "billing@shop.example", FromName: "Shop", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := twilio.New(twilio.Config{AccountSID: fakes.TwilioAccountSID, AuthToken: "token", From: "+14155550100", BaseURL: f.tw.URL,
		StatusCallbackURL: "https://recoup.example/v1/twilio/status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	base := activities.Base{Store: st, Prompts: func() *templates.Set { return set }}
	f.det = &activities.DetectorActivities{Base: base, Email: em}
	f.acts = &activities.DunningActivities{
		Base: base, Email: em, SMS: tx,
		PaymentURL: "https://pay.example/invoices/{invoice_id}", UnsubscribeURL: "https://pay.example/unsub/{customer_id}",
		Clock: func() time.Time { return now }, // 10:00 in New York: inside cus_1's allowed hours
	}
	yes := true
	f.customer(t, postgres.Customer{CustomerID: "cus_1", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+14155550123",
		Locale: "en-US", TimeZone: "America/New_York", Plan: "pro", EmailConsentSet: &yes, SMSConsentSet: &yes})
	return f
}

func (f *fixture) customer(t *testing.T, c postgres.Customer) {
	t.Helper()
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now()
	}
	if _, err := f.st.UpsertCustomer(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) useLLM(t *testing.T, o *fakes.OpenAI, timeout time.Duration) {
	t.Helper()
	c, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-fake", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.LLM = c
}
