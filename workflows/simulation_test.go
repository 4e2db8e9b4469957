package workflows_test

// The randomized simulation: rapid generates adversarial histories (failures, retry results,
// recoveries with old and future value dates, cancels, pauses and resumes, act-now and
// set-channel at any moment, opt-outs, malformed payloads, duplicated deliveries, holds,
// outages of every activity for minutes to days, decisions on both channels with and
// without incentives, provider rejections) and runs each against the real DunningWorkflow in
// the SDK's test environment with time skipping and recording fakes, then checks every
// run-level invariant of docs/INVARIANTS.md. A failure prints the minimal history and the
// seed to rerun it (-rapid.seed). `make simulate` runs 100,000 histories (RAPID_CHECKS);
// `make test` runs 2,000, and a plain `go test` rapid's default 100.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"pgregory.net/rapid"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/workflows"
)

var simSchedule = []time.Duration{0, 3 * day, 7 * day, 14 * day}

const simFinalWait = 3 * day

// Allowed hours in the customer's zone (the shipped policy's 09:00-20:00).
const simFromHour, simUntilHour = 9, 20

var simZones = []string{"UTC", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", "America/Santiago", "Asia/Kolkata"}

// simWindow is the allowed window at or after now in loc.
func simWindow(now time.Time, loc *time.Location) (time.Time, time.Time) {
	l := now.In(loc)
	for d := 0; d < 3; d++ {
		from := time.Date(l.Year(), l.Month(), l.Day()+d, simFromHour, 0, 0, 0, loc)
		until := time.Date(l.Year(), l.Month(), l.Day()+d, simUntilHour, 0, 0, 0, loc)
		if now.Before(from) {
			return from, until
		}
		if now.Before(until) {
			return now, until
		}
	}
	panic("no window")
}

func simAllowed(t time.Time, loc *time.Location) bool {
	h := t.In(loc).Hour()
	return h >= simFromHour && h < simUntilHour
}

type simEvent struct {
	At      time.Duration
	Kind    string // coverage label
	Name    string // signal or update name
	Update  bool
	Payload any
}

func (e simEvent) String() string {
	via := "signal"
	if e.Update {
		via = "update"
	}
	return fmt.Sprintf("%s %s %s %+v", e.At, via, e.Kind, e.Payload)
}

type simOutage struct {
	Activity string
	From, To time.Duration
}

type simDecision struct {
	Channel   recoup.Channel
	Incentive recoup.Incentive
}

type simHistory struct {
	Zone      string
	Events    []simEvent
	Outages   []simOutage
	Decisions []simDecision // per step
	HoldFor   time.Duration // > 0: an incident holds the first message at most this long
	RejectSMS bool
	// Unknown: per step, the first send's outcome is unknown to the worker (a timeout, an
	// ambiguous 502): "accepted" — the provider took it (its events name the key), or
	// "lost" — it never did. The fake plays the evidence the send activity reads on Resend.
	Unknown map[int]string
	// Approval: per step, whether the approval policy holds its message (drawn last), how
	// long it waits and what happens on timeout.
	Approval        map[int]bool
	ApprovalTimeout time.Duration
	OnTimeout       string
}

var simSignalNames = []string{recoup.SignalPaymentFailed, recoup.SignalRetryResult, recoup.SignalRecovered,
	recoup.SignalCancel, recoup.SignalPause, recoup.SignalResume, recoup.SignalOptOut, recoup.SignalActNow,
	recoup.SignalSetChannel, recoup.SignalReleaseHold, recoup.SignalReply, recoup.SignalResolve}

var simEventKinds = []string{"retry_failed", "retry_succeeded", "recovered", "cancel", "cancel_update", "pause",
	"pause_update", "resume", "resume_update", "act_now", "act_now_update", "set_channel", "set_channel_update",
	"opt_out", "failed_again", "release_hold", "malformed", "duplicate", "reply", "reply", "resolve", "resolve_update"}

// simReplyActions are what ClassifyReply may decide for a simulated reply (its text says
// which: "sim:<action>:<hours of pause>").
var simReplyActions = []recoup.ReplyAction{recoup.ReplyPauseUntil, recoup.ReplyVerifyPayment, recoup.ReplyStopEscalate,
	recoup.ReplyEscalate, recoup.ReplyOfferExtend}

var simActivities = []string{"FetchCustomerHistory", "DecideStrategy", "AnnounceOffer", "Send", "FinishRun", "SendWindow", "ReleaseHeldMessage"}

func genHistory(rt *rapid.T) simHistory {
	h := simHistory{Zone: rapid.SampledFrom(simZones).Draw(rt, "zone")}
	for i := range simSchedule {
		h.Decisions = append(h.Decisions, simDecision{
			Channel: rapid.SampledFrom([]recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS, recoup.ChannelNone}).Draw(rt, fmt.Sprintf("channel%d", i)),
			Incentive: rapid.SampledFrom([]recoup.Incentive{{Kind: recoup.IncentiveNone}, {Kind: recoup.IncentiveNone},
				{Kind: recoup.IncentiveDiscountPercent, Value: 10}, {Kind: recoup.IncentiveExtensionDays, Value: 7}}).Draw(rt, fmt.Sprintf("incentive%d", i)),
		})
	}
	if rapid.IntRange(0, 3).Draw(rt, "hold?") == 0 {
		h.HoldFor = time.Duration(rapid.IntRange(1, 48).Draw(rt, "holdHours")) * time.Hour
	}
	h.RejectSMS = rapid.IntRange(0, 9).Draw(rt, "rejectSMS?") == 0
	for i, n := 0, rapid.IntRange(0, 3).Draw(rt, "outages"); i < n; i++ {
		from := time.Duration(rapid.IntRange(0, 20*24*60).Draw(rt, "outageFromMin")) * time.Minute
		length := rapid.SampledFrom([]time.Duration{time.Minute, 20 * time.Minute, 2 * time.Hour, 9 * time.Hour, day, 3 * day}).Draw(rt, "outageLength")
		h.Outages = append(h.Outages, simOutage{Activity: rapid.SampledFrom(simActivities).Draw(rt, "outageActivity"), From: from, To: from + length})
	}
	n := rapid.IntRange(0, 24).Draw(rt, "events")
	for i := 0; i < n; i++ {
		// Odd seconds: a delivery never coincides with a timer or an activity to the second.
		at := time.Duration(rapid.IntRange(0, 20*24*60).Draw(rt, "atMin"))*time.Minute + 17*time.Second
		kind := rapid.SampledFrom(simEventKinds).Draw(rt, "kind")
		skew := rapid.SampledFrom([]time.Duration{0, -time.Minute, -2 * time.Minute, -3 * day, 90 * time.Second, time.Hour, 365 * day}).Draw(rt, "skew")
		occurred := t0.Add(at + skew)
		id := fmt.Sprintf("evt_%d", i)
		ch := rapid.SampledFrom([]recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS, "fax"}).Draw(rt, "eventChannel")
		e := simEvent{At: at, Kind: kind}
		switch kind {
		case "retry_failed", "retry_succeeded":
			e.Name, e.Payload = recoup.SignalRetryResult, recoup.RetryResult{EventID: id, AttemptID: "att_" + id, Succeeded: kind == "retry_succeeded", FailureCode: "insufficient_funds", OccurredAt: occurred}
		case "failed_again":
			e.Name, e.Payload = recoup.SignalPaymentFailed, recoup.PaymentFailed{EventID: id, InvoiceID: "inv_1", CustomerID: "cus_1", AmountMinor: 4900, Currency: "USD", FailureCode: "card_declined", OccurredAt: occurred}
		case "recovered":
			e.Name, e.Payload = recoup.SignalRecovered, recoup.Recovered{EventID: id, OccurredAt: occurred}
		case "cancel", "cancel_update":
			e.Name, e.Payload, e.Update = recoup.SignalCancel, recoup.Cancel{EventID: id, Reason: "sim", OccurredAt: occurred}, kind == "cancel_update"
		case "pause", "pause_update":
			e.Name, e.Payload, e.Update = recoup.SignalPause, recoup.Pause{EventID: id, By: "sim", OccurredAt: occurred}, kind == "pause_update"
		case "resume", "resume_update":
			e.Name, e.Payload, e.Update = recoup.SignalResume, recoup.Resume{EventID: id, By: "sim", OccurredAt: occurred}, kind == "resume_update"
		case "act_now", "act_now_update":
			e.Name, e.Payload, e.Update = recoup.SignalActNow, recoup.ActNowRequest{By: "sim"}, kind == "act_now_update"
		case "set_channel", "set_channel_update":
			e.Name, e.Payload, e.Update = recoup.SignalSetChannel, recoup.SetChannelRequest{By: "sim", Channel: ch}, kind == "set_channel_update"
		case "opt_out":
			e.Name, e.Payload = recoup.SignalOptOut, recoup.OptOut{EventID: id, Channel: ch, OccurredAt: occurred}
		case "release_hold":
			e.Name, e.Payload = recoup.SignalReleaseHold, recoup.ReleaseHold{Status: "cleared", By: "spike-detector"}
		case "reply":
			act := rapid.SampledFrom(simReplyActions).Draw(rt, "replyAction")
			hours := rapid.IntRange(1, 30*24).Draw(rt, "replyPauseHours")
			e.Name, e.Payload = recoup.SignalReply, recoup.Reply{EventID: "reply:" + id, Channel: ch,
				Text: fmt.Sprintf("sim:%s:%d", act, hours), ReceivedAt: t0.Add(at)}
		case "resolve", "resolve_update":
			e.Name, e.Payload, e.Update = recoup.SignalResolve, recoup.Resolve{By: "sim", Note: "handled"}, kind == "resolve_update"
		case "malformed":
			e.Name = rapid.SampledFrom(simSignalNames).Draw(rt, "malformedName")
			e.Payload = rapid.SampledFrom([]any{"sms", 42, []string{"x"}, map[string]any{"channel": 5, "occurred_at": "yesterday"}}).Draw(rt, "malformedPayload")
		case "duplicate":
			if len(h.Events) == 0 {
				continue
			}
			prev := h.Events[rapid.IntRange(0, len(h.Events)-1).Draw(rt, "dupOf")]
			e.Name, e.Payload, e.Update, e.Kind = prev.Name, prev.Payload, prev.Update, "duplicate"
		}
		h.Events = append(h.Events, e)
	}
	// A paused run waits for its resume for as long as it takes; support resumes every
	// history on day 40 so that each run ends.
	h.Events = append(h.Events, simEvent{At: 40*day + 17*time.Second, Kind: "closing_resume", Name: recoup.SignalResume,
		Payload: recoup.Resume{EventID: "evt_closing", By: "sim"}})
	// Drawn last, so that the draws above (and the seeds recorded before) are unchanged.
	h.Unknown = map[int]string{}
	for i := range simSchedule {
		if o := rapid.SampledFrom([]string{"", "", "", "accepted", "lost"}).Draw(rt, fmt.Sprintf("unknown%d", i)); o != "" {
			h.Unknown[i+1] = o
		}
	}
	genApprovals(rt, &h)
	return h
}

// simApprovalKinds are support's answers to a held message.
var simApprovalKinds = []string{"approve", "approve_update", "reject", "reject_update", "edit", "edit_update"}

// genApprovals draws which steps' messages the approval policy holds, and support's
// approvals, rejections and edits (some beyond the policy) at random moments. Drawn after
// everything else, so that earlier seeds still draw the same histories before it.
func genApprovals(rt *rapid.T, h *simHistory) {
	h.Approval = map[int]bool{}
	if rapid.IntRange(0, 2).Draw(rt, "approvals?") != 0 {
		return
	}
	for i := range simSchedule {
		h.Approval[i+1] = rapid.Bool().Draw(rt, fmt.Sprintf("held%d", i))
	}
	h.ApprovalTimeout = rapid.SampledFrom([]time.Duration{time.Hour, 9 * time.Hour, day, 5 * day}).Draw(rt, "approvalTimeout")
	h.OnTimeout = rapid.SampledFrom([]string{recoup.ApprovalOnTimeoutRules, recoup.ApprovalOnTimeoutSkip}).Draw(rt, "onTimeout")
	for i, n := 0, rapid.IntRange(0, 6).Draw(rt, "approvalEvents"); i < n; i++ {
		// Near a step, when its message is likely held (quiet hours and holds delay it).
		near := simSchedule[rapid.IntRange(0, len(simSchedule)-1).Draw(rt, "approvalNearStep")]
		at := near + time.Duration(rapid.IntRange(0, 48*60).Draw(rt, "approvalAtMin"))*time.Minute + 17*time.Second
		kind := rapid.SampledFrom(simApprovalKinds).Draw(rt, "approvalKind")
		e := simEvent{At: at, Kind: kind, Update: strings.HasSuffix(kind, "_update")}
		switch strings.TrimSuffix(kind, "_update") {
		case "approve":
			e.Name, e.Payload = recoup.UpdateApprove, recoup.Approval{By: "sim"}
		case "reject":
			e.Name, e.Payload = recoup.UpdateReject, recoup.Approval{By: "sim", Reason: rapid.SampledFrom([]string{"", "no"}).Draw(rt, "rejectReason")}
		case "edit":
			inc := rapid.SampledFrom([]recoup.Incentive{{Kind: recoup.IncentiveNone}, {Kind: recoup.IncentiveDiscountPercent, Value: 5},
				{Kind: recoup.IncentiveDiscountPercent, Value: 50}, {Kind: recoup.IncentiveExtensionDays, Value: 7},
				{Kind: recoup.IncentiveExtensionDays, Value: 60}}).Draw(rt, "editIncentive")
			e.Name, e.Payload = recoup.UpdateEdit, recoup.ApprovalEdit{By: "sim", Incentive: &inc,
				Tone:    rapid.SampledFrom([]string{"", "firm", "shouty"}).Draw(rt, "editTone"),
				Channel: rapid.SampledFrom([]recoup.Channel{"", recoup.ChannelEmail, recoup.ChannelSMS, "fax"}).Draw(rt, "editChannel")}
		}
		h.Events = append(h.Events, e)
	}
}

// simLimits are the edit bounds of the simulated customer's plan (pro).
func simLimits(excluded []recoup.Channel) recoup.EditLimits {
	l := recoup.EditLimits{Plan: "pro", Tones: []string{"friendly", "firm"}, MaxDiscountPercent: 10, MaxExtensionDays: 14,
		SMSMaxChars: 160, EmailMaxChars: 1200, SubjectMaxChars: 100}
	for _, c := range []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS} {
		if !contains(excluded, c) {
			l.Channels = append(l.Channels, c)
		}
	}
	return l
}

// simProvider plays the provider and the evidence of the send activity: a step whose
// outcome is unknown answers reconcile (the provider took the message or not, as the
// history says) with the end of a 30-minute window; on Resend it answers from the
// evidence: sent without a new message when the provider took it, else the resend.
func simProvider(rec *simRecord, h simHistory, now time.Time, in activities.SendInput) activities.SendResult {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	outcome, unknown := h.Unknown[in.Step]
	accept := func(key string) {
		rec.sends = append(rec.sends, simSend{At: now, Step: in.Step, Channel: in.Decision.Channel, Key: key, Incentive: in.Decision.Incentive})
	}
	switch {
	case in.Resend && outcome == "accepted":
		return activities.SendResult{Delivery: "sent", ProviderMessageID: "msg-" + in.IdempotencyKey}
	case in.Resend:
		accept(recoup.ResendKey(in.IdempotencyKey))
		return activities.SendResult{Delivery: "sent", ProviderMessageID: "msg-resend", ResendKey: recoup.ResendKey(in.IdempotencyKey)}
	case unknown && !rec.answered[in.IdempotencyKey]:
		rec.answered[in.IdempotencyKey] = true
		if outcome == "accepted" {
			accept(in.IdempotencyKey)
		}
		return activities.SendResult{Delivery: recoup.DeliveryReconcile, ReconcileAt: now.Add(30 * time.Minute)}
	case unknown:
		return activities.SendResult{Delivery: recoup.DeliveryReconcile, ReconcileAt: now.Add(30 * time.Minute)}
	}
	accept(in.IdempotencyKey)
	return activities.SendResult{Delivery: "sent", ProviderMessageID: "msg-" + in.IdempotencyKey}
}

// simRecord is what the fakes saw.
type simRecord struct {
	mu        sync.Mutex
	sends     []simSend
	decides   map[int]time.Time // step → when decided (last)
	stepWork  map[int]time.Time // step → the last activity of the step
	finished  []activities.FinishRunInput
	endedAt   time.Time // the first FinishRun attempt: the outcome was settled then
	delivered []simDelivery
	replies   []simReply
	answered  map[string]bool // keys whose unknown outcome was answered
}

// simReply is a reply as ClassifyReply classified it.
type simReply struct {
	At     time.Time
	Action recoup.ReplyAction
	Until  time.Time
}

type simSend struct {
	At        time.Time
	Step      int
	Channel   recoup.Channel
	Key       string
	Incentive recoup.Incentive
}

type simDelivery struct {
	At    time.Time
	Event simEvent
}

// Coverage: how many histories hit each kind of event and fault.
var simCoverage = struct {
	sync.Mutex
	histories int
	kinds     map[string]int
}{kinds: map[string]int{}}

func coverage(h simHistory) {
	simCoverage.Lock()
	defer simCoverage.Unlock()
	simCoverage.histories++
	seen := map[string]bool{}
	for _, e := range h.Events {
		seen["event:"+e.Kind] = true
		if p, ok := e.Payload.(recoup.Recovered); ok && p.OccurredAt.Before(t0.Add(e.At)) {
			seen["value date before delivery"] = true
		}
	}
	for _, o := range h.Outages {
		seen["outage:"+o.Activity] = true
		if o.To-o.From >= day {
			seen["outage of a day or more"] = true
		}
	}
	for _, d := range h.Decisions {
		if d.Incentive.Kind != recoup.IncentiveNone {
			seen["decision with incentive"] = true
		}
		if d.Channel == recoup.ChannelSMS {
			seen["decision sms"] = true
		}
	}
	if h.HoldFor > 0 {
		seen["failure-spike hold"] = true
	}
	if h.RejectSMS {
		seen["provider rejects sms"] = true
	}
	for _, o := range h.Unknown {
		seen["send outcome unknown, provider "+o] = true
	}
	for _, held := range h.Approval {
		if held {
			seen["approval hold, then "+h.OnTimeout+" on timeout"] = true
		}
	}
	seen["zone:"+h.Zone] = true
	for k := range seen {
		simCoverage.kinds[k]++
	}
}

func runHistory(t *testing.T, rt *rapid.T, h simHistory) {
	loc, err := time.LoadLocation(h.Zone)
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(nopLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(workflows.DunningWorkflow)
	env.RegisterActivity(&activities.DunningActivities{})
	env.RegisterActivity(&activities.DetectorActivities{})
	rec := &simRecord{decides: map[int]time.Time{}, stepWork: map[int]time.Time{}, answered: map[string]bool{}}
	down := func(name string) error {
		now := env.Now().Sub(t0)
		for _, o := range h.Outages {
			if (o.Activity == name || (name == "SendEmail" || name == "SendSMS") && o.Activity == "Send") && now >= o.From && now < o.To {
				return temporal.NewApplicationErrorWithOptions(name+": down", "Outage",
					temporal.ApplicationErrorOptions{NextRetryDelay: min(o.To-now, 6*time.Hour)})
			}
		}
		return nil
	}
	work := func(step int) {
		rec.mu.Lock()
		rec.stepWork[step] = env.Now()
		rec.mu.Unlock()
	}
	env.OnActivity(a.PlanRun, mock.Anything, mock.Anything).Return(activities.PlanRunResult{Schedule: simSchedule, FinalWait: simFinalWait}, nil)
	env.OnActivity(a.FetchCustomerHistory, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FetchHistoryInput) (activities.CustomerHistory, error) {
			if err := down("FetchCustomerHistory"); err != nil {
				return activities.CustomerHistory{}, err
			}
			return activities.CustomerHistory{CustomerID: in.CustomerID, Plan: "pro", TimeZone: h.Zone, EmailReachable: true, SMSReachable: true}, nil
		})
	env.OnActivity(a.CheckHold, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.HoldInput) (activities.HoldResult, error) {
			if h.HoldFor == 0 {
				return activities.HoldResult{}, nil
			}
			return activities.HoldResult{IncidentID: "inc-1", Cohort: "gateway=sim", MaxHold: h.HoldFor}, nil
		})
	env.OnActivity(a.DecideStrategy, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DecideInput) (recoup.Decision, error) {
			if err := down("DecideStrategy"); err != nil {
				return recoup.Decision{}, err
			}
			work(in.Step)
			rec.mu.Lock()
			rec.decides[in.Step] = env.Now()
			rec.mu.Unlock()
			want := h.Decisions[in.Step-1]
			ch := want.Channel
			if in.Channel != "" && !contains(in.Excluded, in.Channel) {
				ch = in.Channel
			}
			if contains(in.Excluded, ch) {
				ch = recoup.ChannelEmail
				if contains(in.Excluded, ch) {
					ch = recoup.ChannelSMS
				}
				if contains(in.Excluded, ch) {
					ch = recoup.ChannelNone
				}
			}
			from, until := simWindow(in.Now, loc)
			dec := recoup.Decision{Step: in.Step, Channel: ch, Tone: "friendly", Incentive: want.Incentive, Subject: "Your payment",
				Message: "please pay", DecidedBy: recoup.DecidedByRules, SendAt: from, SendUntil: until}
			if h.Approval[in.Step] && ch.Valid() {
				fb := dec
				fb.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
				dec.Approval = &recoup.ApprovalRequest{Rules: []string{"sim"}, Timeout: h.ApprovalTimeout, OnTimeout: h.OnTimeout,
					Fallback: &fb, Limits: simLimits(in.Excluded)}
			}
			return dec, nil
		})
	env.OnActivity(a.CheckApprovalEdit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CheckEditInput) (activities.CheckEditResult, error) {
			// The policy's own check of a choice, as the real activity runs it (with the
			// word lists, which the simulation's texts never trip).
			ans := activities.EditedAnswer(in.Held, in.Edit)
			if v := policy.CheckChoice(simLimits(in.Excluded), ans); len(v) > 0 {
				return activities.CheckEditResult{Violations: v}, nil
			}
			dec := in.Held
			dec.Approval, dec.DecidedBy, dec.Channel, dec.Tone = nil, recoup.DecidedBySupport, recoup.Channel(ans.Channel), ans.Tone
			dec.Incentive = recoup.Incentive{Kind: ans.Incentive.Kind, Value: ans.Incentive.Value}
			dec.SendAt, dec.SendUntil = simWindow(in.Now, loc)
			return activities.CheckEditResult{Decision: dec}, nil
		})
	env.OnActivity(a.ReleaseHeldMessage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReleaseHeldInput) (activities.ReleaseHeldResult, error) {
			if err := down("ReleaseHeldMessage"); err != nil {
				return activities.ReleaseHeldResult{}, err
			}
			return releaseHeld(in), nil
		})
	env.OnActivity(a.SendWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendWindowInput) (activities.SendWindowResult, error) {
			if err := down("SendWindow"); err != nil {
				return activities.SendWindowResult{}, err
			}
			from, until := simWindow(in.Now, loc)
			return activities.SendWindowResult{NotBefore: from, NotAfter: until, Zone: h.Zone}, nil
		})
	env.OnActivity(a.AnnounceOffer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.OfferInput) (activities.OfferResult, error) {
			if err := down("AnnounceOffer"); err != nil {
				return activities.OfferResult{}, err
			}
			work(in.Step)
			return activities.OfferResult{OfferKey: "k", ExpiresAt: in.Now.Add(14 * day)}, nil
		})
	send := func(name string) func(context.Context, activities.SendInput) (activities.SendResult, error) {
		return func(_ context.Context, in activities.SendInput) (activities.SendResult, error) {
			if err := down(name); err != nil {
				return activities.SendResult{}, err
			}
			now := env.Now()
			work(in.Step)
			// The real send activity's check, with the test clock.
			if (!in.NotBefore.IsZero() && now.Before(in.NotBefore)) || (!in.NotAfter.IsZero() && !now.Before(in.NotAfter)) {
				return activities.SendResult{}, temporal.NewNonRetryableApplicationError("outside allowed hours", recoup.ErrTypeOutsideAllowedHours, nil)
			}
			if h.RejectSMS && in.Decision.Channel == recoup.ChannelSMS {
				return activities.SendResult{}, temporal.NewNonRetryableApplicationError("21211 invalid number", recoup.ErrTypeProviderRejected, nil)
			}
			return simProvider(rec, h, now, in), nil
		}
	}
	env.OnActivity(a.SendEmail, mock.Anything, mock.Anything).Return(send("SendEmail"))
	env.OnActivity(a.SendSMS, mock.Anything, mock.Anything).Return(send("SendSMS"))
	env.OnActivity(a.ClassifyReply, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ClassifyReplyInput) (activities.ClassifyReplyResult, error) {
			var act string
			var hours int
			_, _ = fmt.Sscanf(strings.ReplaceAll(in.Reply.Text, ":", " "), "sim %s %d", &act, &hours)
			res := activities.ClassifyReplyResult{Intent: recoup.IntentOther, Confidence: 0.9, DecidedBy: recoup.DecidedByRules, Action: recoup.ReplyAction(act)}
			if res.Action == recoup.ReplyPauseUntil || res.Action == recoup.ReplyVerifyPayment {
				res.PauseUntil = env.Now().Add(time.Duration(hours) * time.Hour)
			}
			rec.mu.Lock()
			rec.replies = append(rec.replies, simReply{At: env.Now(), Action: res.Action, Until: res.PauseUntil})
			rec.mu.Unlock()
			return res, nil
		})
	env.OnActivity(a.RequestPaymentVerification, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.FinishRun, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishRunInput) (activities.FinishRunResult, error) {
			rec.mu.Lock()
			if rec.endedAt.IsZero() {
				rec.endedAt = env.Now()
			}
			rec.mu.Unlock()
			if err := down("FinishRun"); err != nil {
				return activities.FinishRunResult{}, err
			}
			rec.mu.Lock()
			rec.finished = append(rec.finished, in)
			rec.mu.Unlock()
			return activities.FinishRunResult{}, nil
		})
	for _, e := range h.Events {
		e := e
		env.RegisterDelayedCallback(func() {
			rec.mu.Lock()
			rec.delivered = append(rec.delivered, simDelivery{At: env.Now(), Event: e})
			rec.mu.Unlock()
			if e.Update {
				env.UpdateWorkflow(e.Name, "", &testsuite.TestUpdateCallback{
					OnReject: func(error) {}, OnAccept: func() {}, OnComplete: func(any, error) {},
				}, e.Payload)
				return
			}
			env.SignalWorkflow(e.Name, e.Payload)
		}, e.At)
	}
	env.ExecuteWorkflow(workflows.DunningWorkflow, input())
	// The test environment does not wait for an activity the run abandoned (a stopped send,
	// a hold's look-up): one may still be recording while the invariants are checked.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	checkInvariants(rt, env, h, loc, rec)
}

func contains(cs []recoup.Channel, c recoup.Channel) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// checkInvariants checks the run-level invariants after one history.
func checkInvariants(rt *rapid.T, env *testsuite.TestWorkflowEnvironment, h simHistory, loc *time.Location, rec *simRecord) {
	// I5/I7: the run ends, completed, never failed, whatever the inputs and outages.
	if !env.IsWorkflowCompleted() {
		rt.Fatalf("I5: the run did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		rt.Fatalf("I7: the run failed: %v", err)
	}
	var res recoup.DunningResult
	if err := env.GetWorkflowResult(&res); err != nil {
		rt.Fatal(err)
	}
	v, err := env.QueryWorkflow(recoup.QueryStatus)
	if err != nil {
		rt.Fatalf("I5: status query: %v", err)
	}
	var st recoup.State
	if err := v.Get(&st); err != nil {
		rt.Fatal(err)
	}
	// I7: the outcome is recorded exactly once, with the run's status.
	if len(rec.finished) != 1 || rec.finished[0].Outcome != res.Status {
		rt.Fatalf("I7: FinishRun calls %+v for result %s", rec.finished, res.Status)
	}
	// I1: the first settle delivered while the run was active decides the outcome, and no
	// message leaves after it.
	var settledAt time.Time
	for _, d := range rec.delivered {
		if !rec.endedAt.IsZero() && !d.At.Before(rec.endedAt) {
			break // delivered after the run's outcome was settled
		}
		if isSettle(d.Event) {
			settledAt = d.At
			if res.Status != recoup.StatusRecovered && res.Status != recoup.StatusCanceled {
				rt.Fatalf("I1: %s delivered at %s, yet the run ended %s", d.Event.Kind, d.At.Sub(t0), res.Status)
			}
			break
		}
	}
	if !settledAt.IsZero() {
		for _, s := range rec.sends {
			if s.At.After(settledAt) {
				rt.Fatalf("I1: step %d sent by %s at %s, after the settle at %s", s.Step, s.Channel, s.At.Sub(t0), settledAt.Sub(t0))
			}
		}
	}
	// I2: no message on a channel after the customer opted out of it.
	for _, d := range rec.delivered {
		o, ok := d.Event.Payload.(recoup.OptOut)
		if !ok || !o.Channel.Valid() {
			continue
		}
		for _, s := range rec.sends {
			if s.Channel == o.Channel && s.At.After(d.At) {
				rt.Fatalf("I2: step %d sent by %s at %s after the opt-out at %s", s.Step, s.Channel, s.At.Sub(t0), d.At.Sub(t0))
			}
		}
	}
	// Replies: an escalation sends nothing until support resumes or resolves the run; a
	// reply's pause sends nothing until it ends (or support lifts it).
	for _, r := range rec.replies {
		end := r.Until
		switch r.Action {
		case recoup.ReplyStopEscalate, recoup.ReplyEscalate:
			end = t0.Add(365 * day)
		case recoup.ReplyOfferExtend:
			continue
		}
		for _, d := range rec.delivered {
			if d.At.After(r.At) && d.At.Before(end) && (d.Event.Name == recoup.SignalResume || d.Event.Name == recoup.SignalResolve) {
				end = d.At
			}
		}
		for _, s := range rec.sends {
			if s.At.After(r.At) && s.At.Before(end) {
				rt.Fatalf("replies: step %d sent at %s, after a reply (%s at %s) and before %s", s.Step, s.At.Sub(t0), r.Action, r.At.Sub(t0), end.Sub(t0))
			}
		}
	}
	// I3: every message inside the allowed hours of the customer's zone.
	for _, s := range rec.sends {
		if !simAllowed(s.At, loc) {
			rt.Fatalf("I3: step %d sent at %s local (%s)", s.Step, s.At.In(loc).Format("15:04"), h.Zone)
		}
	}
	// I4: at most one message per step, each key once; no step earlier than its schedule
	// unless support's act-now ended that step's own wait.
	perStep := map[int]int{}
	for _, s := range rec.sends {
		perStep[s.Step]++
		if perStep[s.Step] > 1 {
			rt.Fatalf("I4: step %d sent %d times", s.Step, perStep[s.Step])
		}
	}
	actNows := appliedActNows(st)
	for step, at := range rec.decides {
		due := t0.Add(simSchedule[step-1])
		if !at.Before(due) {
			continue
		}
		prevEnd := t0
		if w, ok := rec.stepWork[step-1]; ok {
			prevEnd = w
		}
		excused := false
		for _, a := range actNows {
			if !a.Before(prevEnd) && !a.After(at) {
				excused = true
			}
		}
		if !excused {
			rt.Fatalf("I4: step %d decided at %s, before its schedule (%s) with no act-now while it waited", step, at.Sub(t0), simSchedule[step-1])
		}
	}
	// No message while paused (pause applied, resume not yet).
	for _, p := range pausedSpans(st) {
		for _, s := range rec.sends {
			if s.At.After(p[0]) && s.At.Before(p[1]) {
				rt.Fatalf("paused from %s to %s, yet step %d sent at %s", p[0].Sub(t0), p[1].Sub(t0), s.Step, s.At.Sub(t0))
			}
		}
	}
	checkApprovals(rt, st, rec)
	// I5: each event id applied at most once; malformed payloads recorded as refused.
	applied := map[string]bool{}
	for _, r := range st.Signals {
		if r.Applied && r.EventID != "" {
			if applied[r.EventID] {
				rt.Fatalf("I5: event %s applied twice", r.EventID)
			}
			applied[r.EventID] = true
		}
	}
}

// checkApprovals: no incentive beyond the plan's caps (pro: 10%, 14 days), whoever chose
// it; a held message leaves only after support approved or edited it, or the timeout
// applied send_rules_without_incentive, and then as recorded; a rejected, skipped or
// ended hold sends nothing for its step.
func checkApprovals(rt *rapid.T, st recoup.State, rec *simRecord) {
	for _, s := range rec.sends {
		if (s.Incentive.Kind == recoup.IncentiveDiscountPercent && s.Incentive.Value > 10) ||
			(s.Incentive.Kind == recoup.IncentiveExtensionDays && s.Incentive.Value > 14) {
			rt.Fatalf("approvals: step %d sent with %+v, beyond the plan's caps", s.Step, s.Incentive)
		}
	}
	if st.Approval != nil {
		rt.Fatalf("approvals: the run ended %s still holding step %d", st.Status, st.Approval.Step)
	}
	seen := map[string]bool{}
	for _, r := range st.Approvals {
		if !seen[r.Outcome] {
			seen[r.Outcome] = true
			simCoverage.Lock()
			simCoverage.kinds["approval "+r.Outcome]++
			simCoverage.Unlock()
		}
		for _, s := range rec.sends {
			if s.Step != r.Step {
				continue
			}
			switch {
			case r.Sent == nil:
				rt.Fatalf("approvals: step %d was %s (%s), yet sent at %s", r.Step, r.Outcome, r.Reason, s.At.Sub(t0))
			case s.At.Before(r.At):
				rt.Fatalf("approvals: step %d sent at %s, before it was %s at %s", r.Step, s.At.Sub(t0), r.Outcome, r.At.Sub(t0))
			case s.Incentive != r.Sent.Incentive || s.Channel != r.Sent.Channel:
				rt.Fatalf("approvals: step %d sent %s %+v, but %s %s %+v", r.Step, s.Channel, s.Incentive, r.Outcome, r.Sent.Channel, r.Sent.Incentive)
			}
		}
	}
}

// nopLogger keeps 100,000 histories from printing the workflow's logs.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

func isSettle(e simEvent) bool {
	switch p := e.Payload.(type) {
	case recoup.RetryResult:
		return p.Succeeded
	case recoup.Recovered:
		return true
	case recoup.Cancel:
		return true
	}
	return false
}

func appliedActNows(st recoup.State) []time.Time {
	var out []time.Time
	for _, r := range st.Signals {
		if r.Name == recoup.SignalActNow && r.Applied {
			out = append(out, r.ReceivedAt)
		}
	}
	for _, a := range st.Actions {
		if a.Action == "act-now" {
			out = append(out, a.At)
		}
	}
	return out
}

// pausedSpans are the [pause, resume) intervals of the run (the last may stay open).
func pausedSpans(st recoup.State) [][2]time.Time {
	type ev struct {
		at    time.Time
		pause bool
	}
	var evs []ev
	for _, a := range st.Actions {
		switch a.Action {
		case "pause":
			evs = append(evs, ev{a.At, true})
		case "resume", "resolve": // resolve resumes a run a reply put in needs_attention
			evs = append(evs, ev{a.At, false})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	var out [][2]time.Time
	var open *time.Time
	for _, e := range evs {
		switch {
		case e.pause && open == nil:
			at := e.at
			open = &at
		case !e.pause && open != nil:
			out = append(out, [2]time.Time{*open, e.at})
			open = nil
		}
	}
	if open != nil {
		out = append(out, [2]time.Time{*open, t0.Add(365 * day)})
	}
	return out
}

func TestSimulatedHistoriesKeepInvariants(t *testing.T) {
	start := time.Now()
	rapid.Check(t, func(rt *rapid.T) {
		h := genHistory(rt)
		coverage(h)
		runHistory(t, rt, h)
	})
	simCoverage.Lock()
	defer simCoverage.Unlock()
	elapsed := time.Since(start)
	var lines []string
	for k, n := range simCoverage.kinds {
		lines = append(lines, fmt.Sprintf("sim-coverage: %-34s %6d histories (%.1f%%)", k, n, 100*float64(n)/float64(simCoverage.histories)))
	}
	sort.Strings(lines)
	t.Logf("sim: %d histories in %s (%.0f histories/s), 0 invariant violations", simCoverage.histories, elapsed.Round(time.Second), float64(simCoverage.histories)/elapsed.Seconds())
	if testing.Verbose() {
		fmt.Println(strings.Join(lines, "\n"))
		fmt.Printf("sim: %d histories in %s (%.0f histories/s), 0 invariant violations\n", simCoverage.histories, elapsed.Round(time.Second), float64(simCoverage.histories)/elapsed.Seconds())
	}
}
