package spike

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// newIncidentFor returns a detector past its warmup with one open incident for bin=411111.
func newIncidentFor(t *testing.T) (*Detector, string) {
	t.Helper()
	det := New(&State{}, Config{Warmup: time.Minute})
	det.Advance(t0)
	det.Advance(t0.Add(10 * time.Minute))
	var id string
	for i := range 40 {
		for _, e := range det.Observe(Record{At: t0.Add(10*time.Minute + time.Duration(i)*time.Second), BIN: "411111"}) {
			if e.Kind == "opened" {
				id = e.Incident.ID
			}
		}
	}
	if id == "" {
		t.Fatal("40 failures of a never-seen BIN in one minute opened no incident")
	}
	return det, id
}

// A payment.failed event the relay delivers three times counts once: eight failures of a
// BIN, each delivered three times, are eight (no incident), not twenty-four; and an
// incident's failures are counted once each.
func TestRedeliveredFailuresCountOnce(t *testing.T) {
	det := New(&State{}, Config{Warmup: time.Minute})
	det.Advance(t0)
	det.Advance(t0.Add(10 * time.Minute))
	for i := range 8 {
		for range 3 {
			if ev := det.Observe(Record{EventID: fmt.Sprintf("evt_%d", i), At: t0.Add(10*time.Minute + time.Duration(i)*time.Second), BIN: "411111"}); len(ev) > 0 {
				t.Fatalf("8 failures delivered 3 times each opened %+v", ev)
			}
		}
	}
	if det.S.Duplicates != 16 {
		t.Fatalf("%d duplicates counted, want 16", det.S.Duplicates)
	}
	// Distinct events still count (and open an incident at 12 a minute); redelivered ones
	// attributed to it count once.
	var id string
	for i := 8; i < 40; i++ {
		for range 2 {
			for _, e := range det.Observe(Record{EventID: fmt.Sprintf("evt_%d", i), At: t0.Add(10*time.Minute + time.Duration(i)*time.Second), BIN: "411111"}) {
				if e.Kind == "opened" {
					id = e.Incident.ID
				}
			}
		}
	}
	if id == "" {
		t.Fatal("40 distinct failures in a minute opened no incident")
	}
	if inc := det.Incident(id); inc.Failures != 40-inc.Evidence.Observed+1 || inc.Evidence.Observed != 12 {
		t.Fatalf("incident counts %d failures (flagged on %d), want 40 distinct failures in all", inc.Failures, inc.Evidence.Observed)
	}
}

// The window of event ids survives continue-as-new (a JSON round trip of the state), and
// is bounded: ids older than the long window are forgotten, and at most MaxSeen are kept.
func TestSeenWindowSurvivesJSONAndIsBounded(t *testing.T) {
	det := New(&State{}, DefaultConfig())
	at := t0
	for i := range 3000 { // 30 a minute for 100 minutes
		at = t0.Add(time.Duration(i) * 2 * time.Second)
		det.Observe(Record{EventID: fmt.Sprintf("evt_%d", i), At: at, BIN: "424242"})
	}
	if n := det.S.Seen.Len(); n > 16*30 || n < 14*30 {
		t.Fatalf("window holds %d ids after 100 minutes at 30 a minute; want the last 15 minutes' (about 450)", n)
	}
	raw, err := json.Marshal(det.S)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	again := New(&back, DefaultConfig())
	again.Observe(Record{EventID: "evt_2999", At: at, BIN: "424242"})
	if again.S.Duplicates != 1 {
		t.Fatal("a redelivery after continue-as-new counted again")
	}
	again.Observe(Record{EventID: "evt_0", At: t0, BIN: "424242"})
	if again.S.Late != 1 || again.S.Duplicates != 1 {
		t.Fatalf("a redelivery from 100 minutes ago: late %d, duplicates %d; want it late, not counted", again.S.Late, again.S.Duplicates)
	}
	for i := range MaxSeen + 500 {
		again.Observe(Record{EventID: fmt.Sprintf("burst_%d", i), At: at, BIN: "424242"})
	}
	if n := again.S.Seen.Len(); n != MaxSeen {
		t.Fatalf("window holds %d ids, want at most %d", n, MaxSeen)
	}
}

// An operator's action is computed without changing the state (it is stored first), then
// applied.
func TestActedChangesNothingUntilApplied(t *testing.T) {
	det, id := newIncidentFor(t)
	in, err := det.Acted(id, "release", "issuer confirmed up")
	if err != nil || in.Status != Released {
		t.Fatalf("Acted: %+v, %v", in, err)
	}
	if got := det.Incident(id); got.Status != Open || got.Note != "" {
		t.Fatalf("Acted changed the state: %+v", got)
	}
	if err := det.Apply(in); err != nil {
		t.Fatal(err)
	}
	if got := det.Incident(id); got.Status != Released || got.Note != "release: issuer confirmed up" {
		t.Fatalf("after Apply: %+v", got)
	}
}

// A detector that starts over (its predecessor lost) recovers the open incident from the
// store: it keeps attributing the cohort's failures while they stay high, clears it once
// they fall back to the baseline its evidence recorded (3 a minute here), then learns that
// baseline (no new incident on the same steady traffic), and numbers new incidents after
// the old ones.
func TestRecoveredIncidentClearsAgainstItsRecordedBaseline(t *testing.T) {
	old := Incident{ID: "inc-20261101T0000-7", Cohort: "bin=411111", Dimension: DimBIN, Value: "411111", Status: Acknowledged,
		Severity: "major", OpenedAt: t0.Add(-time.Hour), OnsetAt: t0.Add(-time.Hour),
		Evidence: Evidence{Window: time.Minute, Observed: 40, Expected: 3, Ratio: 13}}
	det := New(&State{}, Config{Warmup: time.Minute})
	det.Recover([]Incident{old}, 7)
	det.Advance(t0)
	feed := func(from time.Duration, minutes, perMinute int) []Event {
		var out []Event
		for m := range minutes {
			for i := range perMinute {
				at := t0.Add(from + time.Duration(m)*time.Minute + time.Duration(i)*time.Minute/time.Duration(perMinute))
				out = append(out, det.Observe(Record{At: at, BIN: "411111"})...)
			}
		}
		return out
	}
	if ev := feed(0, 180, 40); len(ev) != 0 || det.Incident(old.ID).Status != Acknowledged {
		t.Fatalf("still 40 a minute: events %+v, incident %+v; want it still holding", ev, det.Incident(old.ID))
	}
	if got := det.Incident(old.ID).Failures; got != 180*40 {
		t.Fatalf("%d failures attributed to the recovered incident, want %d", got, 180*40)
	}
	ev := feed(180*time.Minute, 15, 3)
	if len(ev) != 1 || ev[0].Kind != "cleared" || ev[0].Incident.ID != old.ID {
		t.Fatalf("back to 3 a minute for 15 minutes after 3 hours at 40: events %+v, want the recovered incident cleared", ev)
	}
	if ev := feed(195*time.Minute, 60, 3); len(opened(ev)) != 0 {
		t.Fatalf("steady traffic at the recorded baseline opened %+v", opened(ev))
	}
	ev = feed(255*time.Minute, 1, 60)
	if o := opened(ev); len(o) != 1 || o[0].ID <= old.ID[:len(old.ID)-1] || o[0].ID[len(o[0].ID)-2:] != "-8" {
		t.Fatalf("a new spike opened %+v; want one incident numbered after the recovered one (…-8)", o)
	}
}
