package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// the send path infers a customer's zone from their phone when the profile has no
// time zone (policy.CustomerZones); ClassifyReply silently uses UTC. A Californian (no time
// zone stored, +1 415) texts "I'll pay tomorrow" at 17:00 on Tuesday 1 December: in UTC it
// is already 2 December, so "tomorrow" is read as 3 December and the pause runs to
// 4 December 00:00 UTC (3 December 16:00 in California) instead of the start of 3 December
// in California: a day longer than promised, and "today" shifts the same way.
func TestClassifyReplyAPromiseIsReadInTheCustomersInferredZoneNotUTC(t *testing.T) {
	f := newFixture(t)
	yes := true
	f.customer(t, postgres.Customer{CustomerID: "cus_9", Email: "cal@example.com", Phone: "+14155552671",
		Locale: "en-US", EmailConsentSet: &yes, SMSConsentSet: &yes}) // no TimeZone
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC) // 1 Dec 17:00 in Los Angeles
	res, err := f.acts.ClassifyReply(context.Background(), activities.ClassifyReplyInput{WorkflowID: wfID, InvoiceID: "inv_9", CustomerID: "cus_9",
		Reply: recoup.Reply{EventID: "reply:twilio:SMtz", Channel: recoup.ChannelSMS, Text: "I'll pay tomorrow", ReceivedAt: at}})
	if err != nil {
		t.Fatal(err)
	}
	if res.PromisedOn != "2026-12-02" {
		t.Fatalf("promised_on %q (pause until %v); the customer meant Wednesday 2026-12-02 in their zone", res.PromisedOn, res.PauseUntil)
	}
}
