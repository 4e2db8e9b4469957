package workflows_test

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

func heldBy(id string) func(activities.HoldInput) activities.HoldResult {
	return func(activities.HoldInput) activities.HoldResult {
		return activities.HoldResult{IncidentID: id, Cohort: "bin=411111", MaxHold: 24 * time.Hour}
	}
}

// queryAt reads the run's state after d of workflow time.
func (w *world) queryAt(d time.Duration, into *recoup.State) {
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryStatus)
		if err != nil {
			w.t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(into); err != nil {
			w.t.Error(err)
		}
	}, d)
}

// A run whose failure falls in an open incident's cohort holds its first message (status
// held, visible in the query) and sends it exactly once after the detector releases it;
// later steps move back by the time held.
func TestHeldRunSendsOnceAfterRelease(t *testing.T) {
	w := newWorld(t)
	w.hold = heldBy("inc-1")
	var during recoup.State
	w.queryAt(time.Hour, &during)
	w.at(2*time.Hour, recoup.SignalReleaseHold, recoup.ReleaseHold{IncidentID: "inc-other", Status: "cleared"})
	w.at(3*time.Hour, recoup.SignalReleaseHold, recoup.ReleaseHold{IncidentID: "inc-1", Status: "cleared", By: "spike-detector"})
	w.at(4*time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(4*time.Hour)))
	res, st := w.run()
	if during.Status != recoup.StatusHeld || during.Hold == nil || during.Hold.IncidentID != "inc-1" || len(during.Messages) != 0 {
		t.Fatalf("state while held = status %s, hold %+v, %d messages; want held by inc-1, nothing sent", during.Status, during.Hold, len(during.Messages))
	}
	if len(w.sends) != 1 || w.sendTimes[0] != 3*time.Hour {
		t.Fatalf("sends at %v, want exactly one, at the release (3h)", w.sendTimes)
	}
	if res.Status != recoup.StatusRecovered || st.Hold != nil {
		t.Fatalf("result %+v, hold %+v", res, st.Hold)
	}
	var ignored, applied int
	for _, s := range st.Signals {
		if s.Name == recoup.SignalReleaseHold {
			if s.Applied {
				applied++
			} else {
				ignored++
			}
		}
	}
	if applied != 1 || ignored != 1 {
		t.Fatalf("release signals applied %d, ignored %d; want the other incident's ignored", applied, ignored)
	}
	if len(w.holdChecks) != 1 || w.holdChecks[0].FailureCode != "card_declined" {
		t.Fatalf("hold checks %+v, want one, for step 1, with the failure", w.holdChecks)
	}
}

// Billing's retry succeeding while the run is held ends it as recovered without a message.
func TestHeldRunRecoveredSendsNothing(t *testing.T) {
	w := newWorld(t)
	w.hold = heldBy("inc-1")
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(time.Hour)))
	res, _ := w.run()
	if res.Status != recoup.StatusRecovered || len(w.sends) != 0 {
		t.Fatalf("result %+v with %d sends, want recovered with none", res, len(w.sends))
	}
	w.mustFinish(recoup.StatusRecovered)
}

// A hold never lasts longer than the policy's max_hold, and support can end it at once.
func TestHoldEndsAtMaxHoldOrActNow(t *testing.T) {
	w := newWorld(t)
	w.hold = heldBy("inc-1")
	w.at(30*time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(30*time.Hour)))
	w.run()
	if len(w.sends) != 1 || w.sendTimes[0] != 24*time.Hour {
		t.Fatalf("sends at %v, want one at max_hold (24h)", w.sendTimes)
	}

	w = newWorld(t)
	w.hold = heldBy("inc-1")
	w.at(time.Hour, recoup.SignalActNow, recoup.ActNowRequest{By: "support@shop", Reason: "customer asked"})
	w.at(2*time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(2*time.Hour)))
	w.run()
	if len(w.sends) != 1 || w.sendTimes[0] != time.Hour {
		t.Fatalf("sends at %v, want one at act-now (1h)", w.sendTimes)
	}
}

// Pausing a held run and resuming it keeps it held until the release.
func TestPauseResumeWhileHeld(t *testing.T) {
	w := newWorld(t)
	w.hold = heldBy("inc-1")
	var afterResume recoup.State
	w.at(time.Hour, recoup.SignalPause, recoup.Pause{By: "support", Reason: "check"})
	w.at(2*time.Hour, recoup.SignalResume, recoup.Resume{By: "support"})
	w.queryAt(150*time.Minute, &afterResume)
	w.at(3*time.Hour, recoup.SignalReleaseHold, recoup.ReleaseHold{IncidentID: "inc-1"})
	w.at(4*time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(4*time.Hour)))
	w.run()
	if afterResume.Status != recoup.StatusHeld {
		t.Fatalf("status after resume = %s, want held", afterResume.Status)
	}
	if len(w.sends) != 1 || w.sendTimes[0] != 3*time.Hour {
		t.Fatalf("sends at %v, want one at the release (3h)", w.sendTimes)
	}
}
