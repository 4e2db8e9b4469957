package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// SaveIncident upserts an incident as the detector reports it, as evaluated now. Updates
// are idempotent.
func (s *Store) SaveIncident(ctx context.Context, in spike.Incident) error {
	ev, err := json.Marshal(in.Evidence)
	if err != nil {
		return err
	}
	peak, err := json.Marshal(in.Peak)
	if err != nil {
		return err
	}
	var cleared *time.Time
	if !in.ClearedAt.IsZero() {
		cleared = &in.ClearedAt
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO incidents (id, cohort, dimension, value, status, severity, opened_at, onset_at, cleared_at,
			evidence, peak, failures, note, updated_at, evaluated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), now())
		ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, severity = EXCLUDED.severity,
			cleared_at = EXCLUDED.cleared_at, peak = EXCLUDED.peak, failures = EXCLUDED.failures,
			note = EXCLUDED.note, updated_at = now(), evaluated_at = now()`,
		in.ID, in.Cohort, in.Dimension, in.Value, in.Status, in.Severity, in.OpenedAt, in.OnsetAt, cleared,
		ev, peak, in.Failures, in.Note)
	if err != nil {
		return fmt.Errorf("save incident %s: %w", in.ID, err)
	}
	return nil
}

// TouchIncidents records that the detector evaluated these incidents now: they keep
// holding new runs (see HoldIfIncident).
func (s *Store) TouchIncidents(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE incidents SET evaluated_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("touch incidents %v: %w", ids, err)
	}
	return nil
}

// incidentColumns are what scanIncidents reads, followed by the count of runs still held.
const incidentColumns = `id, cohort, dimension, value, status, severity, opened_at, onset_at, cleared_at, evidence, peak,
	failures, note, (SELECT count(*) FROM held_runs h WHERE h.incident_id = i.id AND h.released_at IS NULL)`

// Incidents lists incidents, newest first: the holding and active ones, and with all the
// ended ones too (at most limit).
func (s *Store) Incidents(ctx context.Context, all bool, limit int) ([]spike.Incident, map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents i
		WHERE $1 OR status IN ('open', 'acknowledged', 'released')
		ORDER BY opened_at DESC LIMIT $2`, all, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("list incidents: %w", err)
	}
	return scanIncidents(rows)
}

// Recovery is what a detector that starts over (its predecessor terminated, or its history
// lost) takes over from the store.
type Recovery struct {
	// Incidents are the active ones (open, acknowledged or released), oldest first.
	Incidents []spike.Incident
	// Held is how many runs each incident still holds.
	Held map[string]int
	// Unreleased are the incidents that stopped holding but still hold runs (their release
	// was interrupted), oldest first.
	Unreleased []spike.Incident
	// LastID is the highest incident number used (the N of inc-…-N).
	LastID int
}

// RecoverIncidents reads what a detector starting over must take over.
func (s *Store) RecoverIncidents(ctx context.Context) (Recovery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents i
		WHERE status IN ('open', 'acknowledged', 'released')
			OR EXISTS (SELECT 1 FROM held_runs h WHERE h.incident_id = i.id AND h.released_at IS NULL)
		ORDER BY opened_at, id`)
	if err != nil {
		return Recovery{}, fmt.Errorf("recover incidents: %w", err)
	}
	incs, held, err := scanIncidents(rows)
	if err != nil {
		return Recovery{}, fmt.Errorf("recover incidents: %w", err)
	}
	r := Recovery{Held: held}
	for _, in := range incs {
		if spike.Active(in.Status) {
			r.Incidents = append(r.Incidents, in)
		}
		if !spike.Holding(in.Status) && held[in.ID] > 0 {
			r.Unreleased = append(r.Unreleased, in)
		}
	}
	err = s.pool.QueryRow(ctx, `
		SELECT coalesce(max((regexp_match(id, '-([0-9]+)$'))[1]::bigint), 0) FROM incidents`).Scan(&r.LastID)
	if err != nil {
		return Recovery{}, fmt.Errorf("recover incidents: last id: %w", err)
	}
	return r, nil
}

func scanIncidents(rows pgx.Rows) ([]spike.Incident, map[string]int, error) {
	defer rows.Close()
	var out []spike.Incident
	held := map[string]int{}
	for rows.Next() {
		var in spike.Incident
		var cleared *time.Time
		var ev, peak []byte
		var n int
		if err := rows.Scan(&in.ID, &in.Cohort, &in.Dimension, &in.Value, &in.Status, &in.Severity, &in.OpenedAt,
			&in.OnsetAt, &cleared, &ev, &peak, &in.Failures, &in.Note, &n); err != nil {
			return nil, nil, err
		}
		if cleared != nil {
			in.ClearedAt = *cleared
		}
		_ = json.Unmarshal(ev, &in.Evidence)
		_ = json.Unmarshal(peak, &in.Peak)
		held[in.ID] = n
		out = append(out, in)
	}
	return out, held, rows.Err()
}

// HoldKey is what a run's failure looks like to the detector.
type HoldKey struct {
	WorkflowID string
	Values     map[string]string // dimension → value, e.g. "bin" → "411111"
	At         time.Time
	// LiveWithin: only an incident the detector evaluated this recently holds the run
	// (spike.Config.LiveWithin); one no live detector maintains holds nothing new.
	LiveWithin time.Duration
}

// HoldIfIncident holds the run when an open (or acknowledged) incident that a live detector
// maintains (evaluated within k.LiveWithin) matches its failure, recording the hold, and
// returns that incident (ID "" when nothing matches). It is atomic with respect to an
// incident's status change: the incident row is locked, so a run either sees the incident
// ended or is in the list of holds that its ending releases. Called again for a run
// already holding, it returns the same incident while it holds.
func (s *Store) HoldIfIncident(ctx context.Context, k HoldKey) (spike.Incident, error) {
	if k.LiveWithin <= 0 {
		return spike.Incident{}, fmt.Errorf("check holds for %s: HoldKey.LiveWithin must be positive (how recently a live detector evaluated the incident), got %s", k.WorkflowID, k.LiveWithin)
	}
	var in spike.Incident
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var dims, vals []string
		for d, v := range k.Values {
			if v != "" {
				dims, vals = append(dims, d), append(vals, v)
			}
		}
		var ev []byte
		err := tx.QueryRow(ctx, `
			SELECT i.id, i.cohort, i.status, i.evidence FROM incidents i
			JOIN unnest($1::text[], $2::text[]) AS f(dimension, value) ON f.dimension = i.dimension AND f.value = i.value
			WHERE i.status IN ('open', 'acknowledged') AND i.evaluated_at >= now() - make_interval(secs => $3)
			ORDER BY i.opened_at LIMIT 1
			FOR SHARE OF i`, dims, vals, k.LiveWithin.Seconds()).Scan(&in.ID, &in.Cohort, &in.Status, &ev)
		if errors.Is(err, pgx.ErrNoRows) {
			in = spike.Incident{}
			return nil
		}
		if err != nil {
			return err
		}
		_ = json.Unmarshal(ev, &in.Evidence)
		_, err = tx.Exec(ctx, `
			INSERT INTO held_runs (workflow_id, incident_id, held_at) VALUES ($1, $2, $3)
			ON CONFLICT (workflow_id) DO UPDATE SET incident_id = EXCLUDED.incident_id, released_at = NULL`,
			k.WorkflowID, in.ID, k.At)
		return err
	})
	if err != nil {
		return spike.Incident{}, fmt.Errorf("check holds for %s: %w", k.WorkflowID, err)
	}
	return in, nil
}

// HeldRuns returns the runs still holding for an incident that no longer holds (it is
// released, cleared or a false alarm). An incident that still holds has none to release.
func (s *Store) HeldRuns(ctx context.Context, incidentID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT h.workflow_id FROM held_runs h JOIN incidents i ON i.id = h.incident_id
		WHERE h.incident_id = $1 AND h.released_at IS NULL AND i.status NOT IN ('open', 'acknowledged')
		ORDER BY h.workflow_id`, incidentID)
	if err != nil {
		return nil, fmt.Errorf("list held runs of %s: %w", incidentID, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ReleaseHold records that a run stopped holding (released, or it ended).
func (s *Store) ReleaseHold(ctx context.Context, workflowID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE held_runs SET released_at = $2 WHERE workflow_id = $1 AND released_at IS NULL`, workflowID, at)
	if err != nil {
		return fmt.Errorf("release hold of %s: %w", workflowID, err)
	}
	return nil
}
