package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func testIncident(id, status string) spike.Incident {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	return spike.Incident{ID: id, Cohort: "bin=411111", Dimension: "bin", Value: "411111", Status: status,
		Severity: "major", OpenedAt: at, OnsetAt: at.Add(-time.Minute),
		Evidence: spike.Evidence{Window: time.Minute, Observed: 30, Expected: 2, Ratio: 15}}
}

// An incident the detector stopped evaluating (the detector was lost) holds no new run
// once LiveWithin has passed, even though its row still says open; evaluated again, it
// holds again.
func TestHoldIfIncidentIgnoresIncidentNoLiveDetectorMaintains(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	inc := testIncident("inc-20261102T0900-1", spike.Open)
	if err := st.SaveIncident(ctx, inc); err != nil {
		t.Fatal(err)
	}
	hold := func(wf string) string {
		t.Helper()
		got, err := st.HoldIfIncident(ctx, postgres.HoldKey{WorkflowID: wf, Values: map[string]string{"bin": "411111"},
			At: time.Now(), LiveWithin: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return got.ID
	}
	if got := hold("dunning-inv_1"); got != inc.ID {
		t.Fatalf("a run in the cohort of a live incident is held by %q, want %s", got, inc.ID)
	}
	// The detector last evaluated it 6 minutes ago.
	if _, err := st.Pool().Exec(ctx, `UPDATE incidents SET evaluated_at = now() - interval '6 minutes'`); err != nil {
		t.Fatal(err)
	}
	if got := hold("dunning-inv_2"); got != "" {
		t.Fatalf("a new run is held by %s, an incident no detector evaluated for 6 minutes", got)
	}
	if err := st.TouchIncidents(ctx, []string{inc.ID}); err != nil {
		t.Fatal(err)
	}
	if got := hold("dunning-inv_3"); got != inc.ID {
		t.Fatalf("after the detector evaluated it again, a new run is held by %q, want %s", got, inc.ID)
	}
	_, err := st.HoldIfIncident(ctx, postgres.HoldKey{WorkflowID: "dunning-inv_4", Values: map[string]string{"bin": "411111"}, At: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "LiveWithin must be positive") {
		t.Fatalf("a hold check without LiveWithin: %v, want an error naming it", err)
	}
}

// A detector starting over recovers the active incidents with their held runs, the ended
// ones whose runs were never released, and the highest incident number used.
func TestRecoverIncidentsReturnsActiveAndUnreleased(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	open := testIncident("inc-20261102T0900-3", spike.Open)
	released := testIncident("inc-20261102T0800-12", spike.Open)
	released.Cohort, released.Value, released.OpenedAt = "bin=424242", "424242", released.OpenedAt.Add(-time.Hour)
	cleared := testIncident("inc-20261102T0700-2", spike.Cleared)
	cleared.Cohort, cleared.Value, cleared.OpenedAt = "bin=400000", "400000", cleared.OpenedAt.Add(-2*time.Hour)
	done := testIncident("inc-20261102T0600-1", spike.Cleared)
	done.Cohort, done.Value, done.OpenedAt = "bin=499999", "499999", done.OpenedAt.Add(-3*time.Hour)
	for _, in := range []spike.Incident{open, released, cleared, done} {
		in.Status = spike.Open
		if err := st.SaveIncident(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	for wf, v := range map[string]string{"dunning-a": "411111", "dunning-b": "411111", "dunning-c": "424242", "dunning-d": "400000"} {
		if _, err := st.HoldIfIncident(ctx, postgres.HoldKey{WorkflowID: wf, Values: map[string]string{"bin": v}, At: time.Now(), LiveWithin: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	released.Status = spike.Released
	for _, in := range []spike.Incident{released, cleared, done} {
		if err := st.SaveIncident(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	r, err := st.RecoverIncidents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(in []spike.Incident) []string {
		var out []string
		for _, i := range in {
			out = append(out, i.ID+" "+i.Status)
		}
		return out
	}
	if got := ids(r.Incidents); len(got) != 2 || got[0] != released.ID+" released" || got[1] != open.ID+" open" {
		t.Fatalf("recovered active incidents %v, want the released then the open one", got)
	}
	if got := ids(r.Unreleased); len(got) != 2 || got[0] != cleared.ID+" cleared" || got[1] != released.ID+" released" {
		t.Fatalf("recovered unreleased incidents %v, want the cleared and the released one (they still hold runs)", got)
	}
	if r.Held[open.ID] != 2 || r.Held[released.ID] != 1 || r.LastID != 12 {
		t.Fatalf("held %v, last id %d; want 2 runs held by the open incident, 1 by the released one, last id 12", r.Held, r.LastID)
	}
	if r.Incidents[1].Evidence.Expected != 2 {
		t.Fatalf("recovered evidence %+v, want what was stored", r.Incidents[1].Evidence)
	}
}
