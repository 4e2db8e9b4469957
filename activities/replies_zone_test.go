package activities_test

import (
	"context"
	"strings"
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

// A profile's time zone that is not a valid IANA name is not silently read as UTC: the zone
// is inferred as for sends and the reply's note names the invalid value.
func TestClassifyReplyNamesAnInvalidTimeZoneAndInfersTheZone(t *testing.T) {
	f := newFixture(t)
	yes := true
	f.customer(t, postgres.Customer{CustomerID: "cus_8", Email: "cal@example.com", Phone: "+14155552671",
		Locale: "en-US", TimeZone: "America/Las_Angles", EmailConsentSet: &yes, SMSConsentSet: &yes})
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC) // 1 Dec 17:00 in Los Angeles
	res, err := f.acts.ClassifyReply(context.Background(), activities.ClassifyReplyInput{WorkflowID: wfID, InvoiceID: "inv_8", CustomerID: "cus_8",
		Reply: recoup.Reply{EventID: "reply:twilio:SMbad", Channel: recoup.ChannelSMS, Text: "I'll pay tomorrow", ReceivedAt: at}})
	if err != nil {
		t.Fatal(err)
	}
	if res.PromisedOn != "2026-12-02" || !strings.Contains(res.Note, `"America/Las_Angles" is not valid`) {
		t.Fatalf("promised_on %q, note %q; want 2026-12-02 read in the inferred zone and the invalid zone named", res.PromisedOn, res.Note)
	}
}

// A promise that would keep a run already paused by an earlier promise paused beyond
// max_promise_days from the start of that pause goes to support as a broken promise.
func TestClassifyReplyEscalatesAPromiseChainBeyondMaxPromiseDays(t *testing.T) {
	f := newFixture(t)
	yes := true
	f.customer(t, postgres.Customer{CustomerID: "cus_7", Email: "c7@example.com", Locale: "en-US", TimeZone: "Europe/Paris",
		EmailConsentSet: &yes, SMSConsentSet: &yes})
	at := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	in := activities.ClassifyReplyInput{WorkflowID: wfID, InvoiceID: "inv_7", CustomerID: "cus_7",
		Reply: recoup.Reply{EventID: "reply:twilio:SMchain", Channel: recoup.ChannelSMS, Text: "I'll pay on the 28th", ReceivedAt: at}}
	res, err := f.acts.ClassifyReply(context.Background(), in)
	if err != nil || res.Action != recoup.ReplyPauseUntil {
		t.Fatalf("alone: %v, %+v; want pause_until", err, res)
	}
	in.PausedSince = time.Date(2026, 11, 2, 13, 0, 0, 0, time.UTC)
	res, err = f.acts.ClassifyReply(context.Background(), in)
	if err != nil || res.Action != recoup.ReplyEscalate || !strings.Contains(res.Note, "broken promise") || !res.PauseUntil.IsZero() {
		t.Fatalf("chained: %v, %+v; want escalate as a broken promise", err, res)
	}
}
