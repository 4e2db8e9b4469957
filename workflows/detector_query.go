package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// The incidents query writes its answer for people: durations as Go duration strings
// ("15m0s"), absent times left out, empty lists as []. The detector's own state (carried
// across continue-as-new, stored in PostgreSQL) keeps its format; these views only shape the
// query's answer, and read older answers too.

// Duration is a time.Duration written as a string ("15m0s"); it also reads a number of
// nanoseconds, as answers before it carried.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ns int64
	if err := json.Unmarshal(b, &ns); err != nil {
		return fmt.Errorf("duration %s: neither a string like \"15m0s\" nor nanoseconds", b)
	}
	*d = Duration(ns)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// EvidenceView is spike.Evidence as the query writes it.
type EvidenceView struct {
	spike.Evidence
	Window Duration `json:"window"`
}

// IncidentView is spike.Incident as the query writes it.
type IncidentView struct {
	spike.Incident
	OpenedAt time.Time    `json:"opened_at,omitzero"`
	OnsetAt  time.Time    `json:"onset_at,omitzero"`
	Evidence EvidenceView `json:"evidence"`
	Peak     EvidenceView `json:"peak"`
}

// PlannedRunView is spike.PlannedRun as the query writes it.
type PlannedRunView struct {
	spike.PlannedRun
	Duration Duration `json:"duration"`
}

// ConfigView is spike.Config as the query writes it.
type ConfigView struct {
	spike.Config
	Dimensions       []string         `json:"dimensions"`
	ShortWindow      Duration         `json:"short_window"`
	LongWindow       Duration         `json:"long_window"`
	BaselineHalfLife Duration         `json:"baseline_half_life"`
	Warmup           Duration         `json:"warmup"`
	ClearAfter       Duration         `json:"clear_after"`
	MaxHold          Duration         `json:"max_hold"`
	PlannedRuns      []PlannedRunView `json:"planned_runs"`
}

func evidenceView(e spike.Evidence) EvidenceView {
	return EvidenceView{Evidence: e, Window: Duration(e.Window)}
}

func incidentViews(incs []spike.Incident) []IncidentView {
	incs = append([]spike.Incident(nil), incs...)
	spike.SortIncidents(incs)
	views := make([]IncidentView, 0, len(incs))
	for _, in := range incs {
		views = append(views, IncidentView{Incident: in, OpenedAt: in.OpenedAt, OnsetAt: in.OnsetAt,
			Evidence: evidenceView(in.Evidence), Peak: evidenceView(in.Peak)})
	}
	return views
}

func configView(c spike.Config) ConfigView {
	v := ConfigView{Config: c, Dimensions: append([]string{}, c.Dimensions...),
		ShortWindow: Duration(c.ShortWindow), LongWindow: Duration(c.LongWindow), BaselineHalfLife: Duration(c.BaselineHalfLife),
		Warmup: Duration(c.Warmup), ClearAfter: Duration(c.ClearAfter), MaxHold: Duration(c.MaxHold), PlannedRuns: []PlannedRunView{}}
	for _, p := range c.PlannedRuns {
		v.PlannedRuns = append(v.PlannedRuns, PlannedRunView{PlannedRun: p, Duration: Duration(p.Duration)})
	}
	return v
}
