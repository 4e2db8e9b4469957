package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/inbound"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/worker/workertest"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

const (
	replyToken = "e2etwilioauthtoken0123456789abcd"
	replyBase  = "https://recoup.example.com"
)

// smsTo counts the messages the Twilio fake accepted for a recipient.
func smsTo(tw *fakes.Twilio, to string) int {
	n := 0
	for _, r := range tw.Requests() {
		if r.Status/100 == 2 && r.Form.Get("To") == to {
			n++
		}
	}
	return n
}

// replyFrom posts a signed Twilio inbound SMS to the inbound handler, as Twilio would.
func replyFrom(t *testing.T, h http.Handler, sid, from, body string) {
	t.Helper()
	form := url.Values{"MessageSid": {sid}, "AccountSid": {fakes.TwilioAccountSID}, "From": {from}, "To": {"+14155550100"}, "Body": {body}, "NumMedia": {"0"}}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	signed := replyBase + inbound.TwilioInboundPath
	for _, k := range keys {
		signed += k + form.Get(k)
	}
	mac := hmac.New(sha1.New, []byte(replyToken))
	mac.Write([]byte(signed))
	req := httptest.NewRequest(http.MethodPost, inbound.TwilioInboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("inbound %q answered %d %s", body, w.Code, w.Body)
	}
}

func inboundHandler(t *testing.T, e *workertest.Harness) http.Handler {
	t.Helper()
	s, err := inbound.New(inbound.Options{Ingest: e.Ingest, TwilioAccountSID: fakes.TwilioAccountSID})
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twilio.NewRequestValidator(replyToken)
	if err != nil {
		t.Fatal(err)
	}
	// Routed as `starter serve` routes it: the ingress verifies Twilio's signature.
	srv, err := ingress.New(ingress.Options{Ingest: e.Ingest, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		Twilio: tw, PublicBaseURL: replyBase, TwilioInbound: s.HandleTwilio, Extra: s.Handlers()})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

// "I'll pay on the 15th" by SMS pauses the customer's run until the 16th (the customer's
// zone), classified by the rules (no model configured) on the real worker.
func TestReplyPromisingToPayOnThe15thPausesTheRunUntilThe16th(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour}})
	h := inboundHandler(t, e)
	e.Event(workertest.Failed("evt_rp1", "inv_rp1", "cus_rp1", time.Now().UTC()))
	e.Eventually("the first message", func() bool { return len(e.State("inv_rp1").Messages) == 1 })
	replyFrom(t, h, "SM00000000000000000000000000000a15", "+14155550123", "I'll pay on the 15th")
	ny, _ := time.LoadLocation("America/New_York")
	now := time.Now().In(ny)
	on := time.Date(now.Year(), now.Month(), 15, 0, 0, 0, 0, ny)
	if on.Before(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, ny)) {
		on = on.AddDate(0, 1, 0)
	}
	want := on.AddDate(0, 0, 1)
	e.Eventually("the run paused by the reply", func() bool { return e.State("inv_rp1").Status == recoup.StatusPaused })
	st := e.State("inv_rp1")
	if !st.PausedUntil.Equal(want) || len(st.Replies) != 1 || st.Replies[0].Intent != recoup.IntentPromiseToPay {
		t.Fatalf("paused until %v (want %v), replies %+v", st.PausedUntil, want, st.Replies)
	}
	e.Record("inv_rp1", "reply_promise")
}

// "STOP" by SMS: no further SMS to that customer in this run or the next.
func TestStopReplyEndsSMSInThisRunAndTheNext(t *testing.T) {
	sms := fakes.NewTwilio(t)
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 3 * time.Second, 6 * time.Second}, FinalWait: time.Second,
		Configure: func(a *activities.Activities) {
			tw, err := twilio.New(twilio.Config{AccountSID: fakes.TwilioAccountSID, AuthToken: replyToken, From: "+14155550100", BaseURL: sms.URL,
				StatusCallbackURL: replyBase + config.TwilioStatusPath})
			if err != nil {
				t.Fatal(err)
			}
			a.Dunning.SMS = tw
		}})
	h := inboundHandler(t, e)
	const phone = "+14155550177"
	smsOnly := func(id, inv string, at time.Time) map[string]any {
		ev := workertest.Failed(id, inv, "cus_stop", at)
		ev["customer"] = map[string]any{"name": "Ada Lovelace", "phone": phone, "locale": "en-US", "time_zone": "America/New_York",
			"plan": "pro", "email_consent": false, "sms_consent": true}
		return ev
	}
	e.Event(smsOnly("evt_st1", "inv_st1", time.Now().UTC()))
	e.Eventually("the first SMS", func() bool { return smsTo(sms, phone) == 1 })
	replyFrom(t, h, "SM000000000000000000000000000057a1", phone, "STOP")
	replyFrom(t, h, "SM000000000000000000000000000057a1", phone, "STOP") // Twilio's retry
	if res := e.Result("inv_st1"); res.Status != recoup.StatusExhausted {
		t.Fatalf("first run %+v", res)
	}
	e.Event(smsOnly("evt_st2", "inv_st2", time.Now().UTC()))
	if res := e.Result("inv_st2"); res.Status != recoup.StatusExhausted {
		t.Fatalf("second run %+v", res)
	}
	if n := smsTo(sms, phone); n != 1 {
		t.Fatalf("%d SMS sent to the customer; want only the one before STOP", n)
	}
	for _, inv := range []string{"inv_st1", "inv_st2"} {
		for _, m := range e.State(inv).Messages {
			if m.Channel == recoup.ChannelSMS && m.At.After(e.State("inv_st1").Messages[0].At) && m.Delivery == "sent" {
				t.Fatalf("%s: an SMS was sent after STOP: %+v", inv, m)
			}
		}
	}
}

// "This is fraud" puts the run in needs_attention, which support finds by the DunningStatus
// search attribute, and resolves with a note.
func TestADisputeIsFoundBySupportAndResolved(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour}})
	h := inboundHandler(t, e)
	e.Event(workertest.Failed("evt_rd1", "inv_rd1", "cus_rd1", time.Now().UTC()))
	e.Eventually("the first message", func() bool { return len(e.State("inv_rd1").Messages) == 1 })
	replyFrom(t, h, "SM00000000000000000000000000000d15", "+14155550123", "This is fraud, I never authorized it")
	query := fmt.Sprintf("%s = '%s' AND %s = 'inv_rd1'", recoup.SearchAttrDunningStatus, recoup.StatusNeedsAttention, recoup.SearchAttrInvoiceID)
	e.Eventually("the run found by DunningStatus = needs_attention", func() bool {
		resp, err := e.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		return err == nil && len(resp.Executions) == 1
	})
	st := e.State("inv_rd1")
	if len(st.Replies) != 1 || st.Replies[0].Intent != recoup.IntentDispute || st.Replies[0].Action != recoup.ReplyStopEscalate {
		t.Fatalf("replies %+v", st.Replies)
	}
	hd, err := e.Client.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: recoup.WorkflowID("inv_rd1"),
		UpdateName: recoup.UpdateResolve, Args: []any{recoup.Resolve{By: "alice", Note: "the customer's bank confirmed the charge"}},
		WaitForStage: client.WorkflowUpdateStageCompleted})
	var res recoup.ActionResult
	if err == nil {
		err = hd.Get(context.Background(), &res)
	}
	if err != nil || res.Status != recoup.StatusActive {
		t.Fatalf("resolve: %+v, %v", res, err)
	}
}
