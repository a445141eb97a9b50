package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/wave"
)

// Wave is a batch plan (issue 11): the internal/wave.Spec an operator made,
// minus its members (WaveMember rows), plus where the wave is. The
// workflow owns State once the wave runs and writes it through
// SetWaveState; the API reads it.
type Wave struct {
	ID       string `gorm:"primaryKey;size:64"`
	DomainID string `gorm:"size:64;not null"`
	// ProjectID is the IAM project of the caller that made it.
	ProjectID string `gorm:"size:64;not null"`
	// MigProjectID is the migration project its members' tasks belong to
	// (the spec's project_id); names are unique within it.
	MigProjectID   string            `gorm:"size:64;not null"`
	Name           string            `gorm:"size:255;not null"`
	Description    string            `gorm:"size:1024;not null"`
	TaskDefaults   wave.TaskDefaults `gorm:"type:longtext;serializer:json"`
	StartAt        *time.Time        `gorm:""`
	MaxConcurrent  int               `gorm:"not null"`
	Budget         wave.Budget       `gorm:"type:longtext;serializer:json"`
	TimeZone       string            `gorm:"size:64;not null"`
	CutoverWindows []wave.TimeWindow `gorm:"type:longtext;serializer:json"`
	CutoverMode    wave.CutoverMode  `gorm:"size:16;not null"`
	TestFirst      bool              `gorm:"not null"`
	MaxFailures    int               `gorm:"not null"`
	DependsOn      string            `gorm:"size:64;not null"`

	State       wave.WaveState `gorm:"size:32;not null"`
	StateReason string         `gorm:"size:1024;not null"`
	// MemberCount is kept by AddWaveMembers/RemoveWaveMembers; DoneCount
	// and FailedCount by UpdateWaveMember as members change state, so the
	// list needs no second query.
	MemberCount int `gorm:"not null"`
	DoneCount   int `gorm:"not null"`
	FailedCount int `gorm:"not null"`
	// NextRunAt is when the wave's schedule fires next (nil: none).
	NextRunAt  *time.Time `gorm:""`
	StartedAt  *time.Time `gorm:""`
	FinishedAt *time.Time `gorm:""`
	CreatedAt  time.Time  `gorm:"not null"`
	UpdatedAt  time.Time  `gorm:"not null"`
}

// Spec is the wave as planned, with ms as its members.
func (w *Wave) Spec(ms []WaveMember) wave.Spec {
	s := wave.Spec{
		Name: w.Name, Description: w.Description, ProjectID: w.MigProjectID, TaskDefaults: w.TaskDefaults,
		StartAt: w.StartAt, MaxConcurrent: w.MaxConcurrent, Budget: w.Budget, TimeZone: w.TimeZone,
		CutoverWindows: w.CutoverWindows, CutoverMode: w.CutoverMode, TestFirst: w.TestFirst,
		MaxFailures: w.MaxFailures, DependsOn: w.DependsOn,
	}
	for _, m := range ms {
		s.Members = append(s.Members, m.Member())
	}
	return s
}

// SetSpec copies the planned fields of s (not its members) into w.
func (w *Wave) SetSpec(s wave.Spec) {
	w.Name, w.Description, w.MigProjectID, w.TaskDefaults = s.Name, s.Description, s.ProjectID, s.TaskDefaults
	w.StartAt, w.MaxConcurrent, w.Budget, w.TimeZone = s.StartAt, s.MaxConcurrent, s.Budget, s.TimeZone
	w.CutoverWindows, w.CutoverMode, w.TestFirst = s.CutoverWindows, s.CutoverMode, s.TestFirst
	w.MaxFailures, w.DependsOn = s.MaxFailures, s.DependsOn
}

// WaveMember is one source server of a wave, with its overrides and where
// its migration is.
type WaveMember struct {
	ID       string `gorm:"primaryKey;size:64"`
	DomainID string `gorm:"size:64;not null"`
	WaveID   string `gorm:"size:64;not null"`
	// Position keeps the order members were listed in (OrderMembers' "as
	// listed" tie-break).
	Position int    `gorm:"not null"`
	SourceID string `gorm:"size:64;not null"`
	// SourceName is the source's name when it joined, for reports that
	// outlive the source.
	SourceName   string  `gorm:"size:255;not null"`
	TargetName   string  `gorm:"size:255;not null"`
	TemplateID   string  `gorm:"size:64;not null"`
	DiskSizesGiB []int64 `gorm:"column:disk_sizes_gib;type:longtext;serializer:json"`
	Priority     int32   `gorm:"not null"`

	State wave.MemberState `gorm:"size:32;not null"`
	// FailedFrom is the state a FAILED member failed in: retry_failed
	// resumes it there.
	FailedFrom wave.MemberState `gorm:"size:32;not null"`
	// TaskID is the member's task, nil until the wave is scheduled.
	TaskID    *string `gorm:"size:64"`
	ErrorCode string  `gorm:"size:32;not null"`
	ErrorMsg  string  `gorm:"size:1024;not null"`

	CopyStartedAt *time.Time `gorm:""`
	CopyEndedAt   *time.Time `gorm:""`
	SyncedAt      *time.Time `gorm:""`
	// CutoverStartedAt is the start of the final pass; TargetStartedAt the
	// target's launch; DowntimeSeconds the time between them.
	CutoverStartedAt *time.Time `gorm:""`
	TargetStartedAt  *time.Time `gorm:""`
	DowntimeSeconds  *float64   `gorm:""`
	BytesMoved       int64      `gorm:"not null"`
	BytesTotal       int64      `gorm:"not null"`
	// Verification is the consistency check's result (empty: not run).
	Verification string `gorm:"size:32;not null"`
	// Churn holds the member's recent sync passes (MeasureChurn's input);
	// WaveMembers leaves it out, UpdateWaveMember has it.
	Churn []wave.SyncPass `gorm:"type:longtext;serializer:json"`
	// ChurnBytesPerHour and ChurnIntervalSeconds are MeasureChurn of
	// Churn, kept by UpdateWaveMember so a 1,000-member show reads two
	// numbers a member instead of decoding its samples (nil: fewer than
	// two passes).
	ChurnBytesPerHour    *float64 `gorm:""`
	ChurnIntervalSeconds *float64 `gorm:""`
	// ShareMbps is the member's share of the budget last pushed (0: none
	// or unlimited); LastSpeedMbps its last measured speed.
	ShareMbps     int32     `gorm:"not null"`
	LastSpeedMbps float64   `gorm:"not null"`
	CreatedAt     time.Time `gorm:"not null"`
	UpdatedAt     time.Time `gorm:"not null"`
}

// MeasuredChurn is the churn UpdateWaveMember measured, if any.
func (m *WaveMember) MeasuredChurn() (wave.Churn, bool) {
	if m.ChurnBytesPerHour == nil || m.ChurnIntervalSeconds == nil {
		return wave.Churn{}, false
	}
	return wave.Churn{BytesPerHour: *m.ChurnBytesPerHour,
		Interval: time.Duration(*m.ChurnIntervalSeconds * float64(time.Second))}, true
}

// Member is the planned part of m.
func (m *WaveMember) Member() wave.Member {
	p := m.Priority
	return wave.Member{SourceID: m.SourceID, Name: m.SourceName, TargetName: m.TargetName,
		TemplateID: m.TemplateID, DiskSizesGiB: m.DiskSizesGiB, Priority: &p}
}

// MaxChurnSamples bounds the sync passes a member keeps: enough for a
// steady churn figure, small enough for a 1,000-member show.
const MaxChurnSamples = 24

// SourceInWaveError: a source belongs to another active wave (create, add,
// schedule), or to a running one (source delete).
type SourceInWaveError struct{ SourceID, WaveID string }

func (e *SourceInWaveError) Error() string {
	return fmt.Sprintf("store: source %s belongs to wave %s", e.SourceID, e.WaveID)
}
func (e *SourceInWaveError) Is(target error) bool { return target == ErrConflict }

// WaveStateError: the wave's state forbids the change (not editable, still
// running, a move its life cycle does not allow).
type WaveStateError struct {
	State wave.WaveState
	Op    string
}

func (e *WaveStateError) Error() string {
	return fmt.Sprintf("store: wave in state %s cannot %s", e.State, e.Op)
}
func (e *WaveStateError) Is(target error) bool { return target == ErrConflict }

// MemberBusyError: a member cannot be removed in its state (its task
// exists or it is past PENDING).
type MemberBusyError struct {
	ID    string
	State wave.MemberState
}

func (e *MemberBusyError) Error() string {
	return fmt.Sprintf("store: member %s is %s", e.ID, e.State)
}
func (e *MemberBusyError) Is(target error) bool { return target == ErrConflict }

// activeStates are the states in which a wave holds its members.
func activeStates() []string { return waveStatesWhere(wave.WaveState.Active) }

// runningStates are the states of a wave that has started and not ended.
func runningStates() []string { return waveStatesWhere(wave.WaveState.Running) }

// waveStatesWhere lists the wave states for which keep is true, as the
// strings a query binds.
func waveStatesWhere(keep func(wave.WaveState) bool) []string {
	var out []string
	for _, s := range wave.WaveStates {
		if keep(s) {
			out = append(out, string(s))
		}
	}
	return out
}

// activeWaves maps each of sources that is a member of an active wave of
// the tenant other than except to that wave.
func activeWaves(tx *gorm.DB, t Tenant, sources []string, except string, states []string) (map[string]string, error) {
	out := map[string]string{}
	err := inChunks(sources, func(chunk []string) error {
		var rows []struct{ SourceID, WaveID string }
		err := tx.Table("wave_members AS m").Select("m.source_id, m.wave_id").
			Joins("JOIN waves AS w ON w.domain_id = m.domain_id AND w.id = m.wave_id").
			Where("m.domain_id = ? AND m.source_id IN ? AND m.wave_id <> ? AND w.state IN ?", t.DomainID, chunk, except, states).
			Order("m.wave_id").Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("active waves of sources: %w", err)
		}
		for _, r := range rows {
			if _, ok := out[r.SourceID]; !ok {
				out[r.SourceID] = r.WaveID
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// firstInWave returns the first of ids (in their order) found in m.
func firstInWave(ids []string, m map[string]string) error {
	for _, id := range ids {
		if w, ok := m[id]; ok {
			return &SourceInWaveError{SourceID: id, WaveID: w}
		}
	}
	return nil
}

func sourceIDs(ms []WaveMember) []string {
	out := make([]string, len(ms))
	for i := range ms {
		out[i] = ms[i].SourceID
	}
	return out
}

// CreateWave inserts a wave with its members, in one transaction. Its
// migration project must be the tenant's (ErrNotFound), its name free in
// that project (ErrDuplicate), every member's source the tenant's
// (*MissingError) and in no other active wave (*SourceInWaveError).
func (s *Store) CreateWave(ctx context.Context, t Tenant, w *Wave, ms []WaveMember) error {
	now := time.Now().UTC()
	w.DomainID, w.ProjectID = t.DomainID, t.ProjectID
	if w.State == "" {
		w.State = wave.WaveDraft
	}
	w.CreatedAt, w.UpdatedAt = now, now
	return s.tx(ctx, func(tx *gorm.DB) error {
		// Serialises membership checks with every other wave write of the
		// tenant, so two waves cannot take one source at once.
		if err := s.lockTenant(tx, t.DomainID, "waves"); err != nil {
			return err
		}
		ok, err := migProjectExists(tx, t, w.MigProjectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("migration project %s: %w", w.MigProjectID, ErrNotFound)
		}
		if err := tx.Create(w).Error; err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("wave %q: %w", w.Name, ErrDuplicate)
			}
			return fmt.Errorf("create wave: %w", err)
		}
		return s.addMembers(tx, t, w, ms, now)
	})
}

// addMembers inserts ms into w (locked by the caller's transaction).
func (s *Store) addMembers(tx *gorm.DB, t Tenant, w *Wave, ms []WaveMember, now time.Time) error {
	if len(ms) == 0 {
		return nil
	}
	if w.MemberCount+len(ms) > wave.MaxMembers {
		return fmt.Errorf("%d members: %w", w.MemberCount+len(ms), ErrLimit)
	}
	ids := dedupe(sourceIDs(ms))
	if len(ids) != len(ms) {
		return fmt.Errorf("a source listed twice: %w", ErrDuplicate)
	}
	names := map[string]string{}
	if err := inChunks(ids, func(chunk []string) error {
		var rows []struct{ ID, Name string }
		if err := tx.Model(&Source{}).Select("id", "name").Where("domain_id = ? AND id IN ?", t.DomainID, chunk).
			Scan(&rows).Error; err != nil {
			return fmt.Errorf("find sources: %w", err)
		}
		for _, r := range rows {
			names[r.ID] = r.Name
		}
		return nil
	}); err != nil {
		return err
	}
	var missing []string
	for _, id := range ids {
		if _, ok := names[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return &MissingError{IDs: missing}
	}
	in, err := activeWaves(tx, t, ids, w.ID, activeStates())
	if err != nil {
		return err
	}
	if err := firstInWave(ids, in); err != nil {
		return err
	}
	var maxPos *int
	if err := tx.Model(&WaveMember{}).Select("MAX(position)").Where("domain_id = ? AND wave_id = ?", t.DomainID, w.ID).
		Scan(&maxPos).Error; err != nil {
		return fmt.Errorf("member positions: %w", err)
	}
	next := 0
	if maxPos != nil {
		next = *maxPos + 1
	}
	for i := range ms {
		m := &ms[i]
		m.DomainID, m.WaveID, m.Position = t.DomainID, w.ID, next+i
		m.SourceName = names[m.SourceID]
		if m.State == "" {
			m.State = wave.MemberPending
		}
		m.CreatedAt, m.UpdatedAt = now, now
	}
	if err := tx.CreateInBatches(ms, 200).Error; err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("a source is a member already: %w", ErrDuplicate)
		}
		return fmt.Errorf("add wave members: %w", err)
	}
	w.MemberCount += len(ms)
	return tx.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, w.ID).
		Updates(map[string]any{"member_count": w.MemberCount, "updated_at": now}).Error
}

// Wave loads one wave of the tenant.
func (s *Store) Wave(ctx context.Context, t Tenant, id string) (*Wave, error) {
	return first[Wave](s.db.WithContext(ctx).Where("domain_id = ? AND id = ?", t.DomainID, id))
}

// WaveFilter holds the list filters.
type WaveFilter struct {
	Name         string
	State        wave.WaveState
	MigProjectID string
}

// ListWaves lists a page of the tenant's waves, oldest first, and the
// count of all that match.
func (s *Store) ListWaves(ctx context.Context, t Tenant, f WaveFilter, pg Page) ([]Wave, int64, error) {
	q := s.db.WithContext(ctx).Model(&Wave{}).Where("domain_id = ?", t.DomainID)
	q = whereIs(q, "name", f.Name)
	q = whereIs(q, "state", f.State)
	q = whereIs(q, "mig_project_id", f.MigProjectID)
	return listPage[Wave](q, "created_at, id", pg, "waves")
}

// WaveDependencies maps each of the tenant's waves that depends on another
// to that wave (wave.FindCycle's input).
func (s *Store) WaveDependencies(ctx context.Context, t Tenant) (map[string]string, error) {
	var rows []struct{ ID, DependsOn string }
	if err := s.db.WithContext(ctx).Model(&Wave{}).Select("id", "depends_on").
		Where("domain_id = ? AND depends_on <> ''", t.DomainID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("wave dependencies: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.DependsOn
	}
	return out, nil
}

func (s *Store) lockWave(tx *gorm.DB, t Tenant, id string) (*Wave, error) {
	return first[Wave](s.forUpdate(tx.Where("domain_id = ? AND id = ?", t.DomainID, id)))
}

// lockTenantWave takes the tenant's waves lock, then the wave's row: every
// change to a wave goes through both, in this order, so that two changes
// never interleave.
func (s *Store) lockTenantWave(tx *gorm.DB, t Tenant, id string) (*Wave, error) {
	if err := s.lockTenant(tx, t.DomainID, "waves"); err != nil {
		return nil, err
	}
	return s.lockWave(tx, t, id)
}

// lockEditableWave is lockTenantWave for a change of members, which only an
// editable wave (DRAFT, SCHEDULED, PAUSED) takes: *WaveStateError otherwise.
func (s *Store) lockEditableWave(tx *gorm.DB, t Tenant, id string) (*Wave, error) {
	w, err := s.lockTenantWave(tx, t, id)
	if err != nil {
		return nil, err
	}
	if !w.State.Editable() {
		return nil, &WaveStateError{State: w.State, Op: "change its members"}
	}
	return w, nil
}

func saveWave(tx *gorm.DB, t Tenant, w *Wave) error {
	w.UpdatedAt = time.Now().UTC()
	err := tx.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, w.ID).
		Select("*").Omit("id", "domain_id", "created_at").Updates(w).Error
	if isUniqueViolation(err) {
		return fmt.Errorf("wave %q: %w", w.Name, ErrDuplicate)
	}
	return err
}

// UpdateWave loads a wave in a transaction, lets fn change it and saves it
// whole (a taken name is ErrDuplicate). fn sees the row as stored and
// decides what its state allows; members are not touched.
func (s *Store) UpdateWave(ctx context.Context, t Tenant, id string, fn func(tx *gorm.DB, w *Wave) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockTenantWave(tx, t, id)
		if err != nil {
			return err
		}
		if err := fn(tx, w); err != nil {
			return err
		}
		if w.MigProjectID != "" {
			ok, err := migProjectExists(tx, t, w.MigProjectID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("migration project %s: %w", w.MigProjectID, ErrNotFound)
			}
		}
		return saveWave(tx, t, w)
	})
}

// SetWaveState moves a wave to state with a reason, as its life cycle
// allows (wave.CheckWaveMove; *WaveStateError otherwise). Moving to the
// state it is in only updates the reason. The first move to REPLICATING
// or later (not PAUSED) stamps started_at, a terminal state finished_at. Moving to
// an active state refuses members that another active wave holds
// (*SourceInWaveError).
func (s *Store) SetWaveState(ctx context.Context, t Tenant, id string, state wave.WaveState, reason string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockTenantWave(tx, t, id)
		if err != nil {
			return err
		}
		if w.State != state {
			if err := wave.CheckWaveMove(w.State, state); err != nil {
				return &WaveStateError{State: w.State, Op: "move to " + string(state)}
			}
			if state.Active() && !w.State.Active() {
				var ids []string
				if err := tx.Model(&WaveMember{}).Where("domain_id = ? AND wave_id = ?", t.DomainID, id).
					Order("position").Pluck("source_id", &ids).Error; err != nil {
					return err
				}
				in, err := activeWaves(tx, t, ids, id, activeStates())
				if err != nil {
					return err
				}
				if err := firstInWave(ids, in); err != nil {
					return err
				}
			}
		}
		now := time.Now().UTC()
		// PAUSED and FAILED count as running, but a wave paused before
		// its start has not started.
		if state.Running() && state != wave.WavePaused && state != wave.WaveFailed && w.StartedAt == nil {
			w.StartedAt = &now
		}
		if state.Terminal() && w.FinishedAt == nil {
			w.FinishedAt = &now
		}
		w.State, w.StateReason = state, truncate(reason, 1024)
		return saveWave(tx, t, w)
	})
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// DeleteWave removes a wave and its members. A running wave is refused
// (*WaveStateError: cancel it first). Its tasks stay, as tasks of their
// own (wave_id cleared).
func (s *Store) DeleteWave(ctx context.Context, t Tenant, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockTenantWave(tx, t, id)
		if err != nil {
			return err
		}
		if w.State.Running() {
			return &WaveStateError{State: w.State, Op: "be deleted"}
		}
		if err := tx.Model(&Task{}).Where("domain_id = ? AND wave_id = ?", t.DomainID, id).
			Update("wave_id", nil).Error; err != nil {
			return fmt.Errorf("release wave tasks: %w", err)
		}
		if err := tx.Where("domain_id = ? AND wave_id = ?", t.DomainID, id).Delete(&WaveMember{}).Error; err != nil {
			return fmt.Errorf("delete wave members: %w", err)
		}
		return tx.Where("domain_id = ? AND id = ?", t.DomainID, id).Delete(&Wave{}).Error
	})
}

// AddWaveMembers adds members to an editable wave (DRAFT, SCHEDULED,
// PAUSED; *WaveStateError otherwise), all or none, under the rules of
// CreateWave. ms get their ids from the caller and their positions after
// the wave's last member.
func (s *Store) AddWaveMembers(ctx context.Context, t Tenant, waveID string, ms []WaveMember) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockEditableWave(tx, t, waveID)
		if err != nil {
			return err
		}
		return s.addMembers(tx, t, w, ms, time.Now().UTC())
	})
}

// RemoveWaveMembers removes members (by member id) from an editable wave,
// all or none: an unknown id is *MissingError, a member past PENDING
// *MemberBusyError. A PENDING member's task (made when the wave was
// scheduled, never started) is the caller's to delete.
func (s *Store) RemoveWaveMembers(ctx context.Context, t Tenant, waveID string, ids []string) error {
	uniq := dedupe(ids)
	if len(uniq) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockEditableWave(tx, t, waveID)
		if err != nil {
			return err
		}
		var rows []WaveMember
		if err := inChunks(uniq, func(chunk []string) error {
			var part []WaveMember
			if err := tx.Select("id", "state", "task_id").
				Where("domain_id = ? AND wave_id = ? AND id IN ?", t.DomainID, waveID, chunk).
				Find(&part).Error; err != nil {
				return fmt.Errorf("find wave members: %w", err)
			}
			rows = append(rows, part...)
			return nil
		}); err != nil {
			return err
		}
		have := map[string]WaveMember{}
		for _, r := range rows {
			have[r.ID] = r
		}
		var missing []string
		for _, id := range uniq {
			m, ok := have[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			if m.State != wave.MemberPending {
				return &MemberBusyError{ID: id, State: m.State}
			}
		}
		if len(missing) > 0 {
			return &MissingError{IDs: missing}
		}
		if err := inChunks(uniq, func(chunk []string) error {
			if err := tx.Where("domain_id = ? AND wave_id = ? AND id IN ?", t.DomainID, waveID, chunk).
				Delete(&WaveMember{}).Error; err != nil {
				return fmt.Errorf("remove wave members: %w", err)
			}
			return nil
		}); err != nil {
			return err
		}
		w.MemberCount -= len(uniq)
		return tx.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, waveID).
			Updates(map[string]any{"member_count": w.MemberCount, "updated_at": time.Now().UTC()}).Error
	})
}

// WaveMembers lists a wave's members in the order they were added (an
// unknown wave is ErrNotFound; one of another tenant too), without their
// churn samples (ChurnBytesPerHour has what they say).
func (s *Store) WaveMembers(ctx context.Context, t Tenant, waveID string) ([]WaveMember, error) {
	var n int64
	db := s.db.WithContext(ctx)
	if err := db.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, waveID).Count(&n).Error; err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	out := []WaveMember{}
	if err := db.Omit("churn").Where("domain_id = ? AND wave_id = ?", t.DomainID, waveID).Order("position").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("wave members: %w", err)
	}
	return out, nil
}

// waveMemberBriefColumns are what a wave's show needs of each member.
var waveMemberBriefColumns = []string{"id", "wave_id", "position", "source_id", "source_name", "target_name",
	"template_id", "disk_sizes_gib", "priority", "state", "failed_from", "task_id", "error_code", "error_msg",
	"downtime_seconds", "bytes_moved", "bytes_total", "churn_bytes_per_hour", "churn_interval_seconds",
	"share_mbps", "last_speed_mbps"}

// WaveMembersBrief is WaveMembers with only the columns a wave's show
// reads (no timestamps, no samples), scanned by hand: a 1,000-member show
// is mostly this query, and GORM's reflection was a third of it.
func (s *Store) WaveMembersBrief(ctx context.Context, t Tenant, waveID string) ([]WaveMember, error) {
	rows, err := s.db.WithContext(ctx).Model(&WaveMember{}).Select(waveMemberBriefColumns).
		Where("domain_id = ? AND wave_id = ?", t.DomainID, waveID).Order("position").Rows()
	if err != nil {
		return nil, fmt.Errorf("wave members: %w", err)
	}
	defer rows.Close()
	out := []WaveMember{}
	for rows.Next() {
		var m WaveMember
		var disks sql.NullString
		var state, failedFrom string
		if err := rows.Scan(&m.ID, &m.WaveID, &m.Position, &m.SourceID, &m.SourceName, &m.TargetName, &m.TemplateID,
			&disks, &m.Priority, &state, &failedFrom, &m.TaskID, &m.ErrorCode, &m.ErrorMsg, &m.DowntimeSeconds,
			&m.BytesMoved, &m.BytesTotal, &m.ChurnBytesPerHour, &m.ChurnIntervalSeconds, &m.ShareMbps,
			&m.LastSpeedMbps); err != nil {
			return nil, fmt.Errorf("wave members: %w", err)
		}
		m.DomainID, m.State, m.FailedFrom = t.DomainID, wave.MemberState(state), wave.MemberState(failedFrom)
		if disks.Valid && disks.String != "" && disks.String != "null" {
			if err := json.Unmarshal([]byte(disks.String), &m.DiskSizesGiB); err != nil {
				return nil, fmt.Errorf("wave member %s disk sizes: %w", m.ID, err)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("wave members: %w", err)
	}
	return out, nil
}

// UpdateWaveMember loads one member in a transaction, lets fn change it
// and saves it whole. A state change must be one the member's life cycle
// allows (*smserr.Error from wave.CheckMemberMove); moving to FAILED
// records the state it failed in, and the wave's done and failed counters
// follow.
func (s *Store) UpdateWaveMember(ctx context.Context, t Tenant, waveID, memberID string, fn func(m *WaveMember) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		return s.updateMember(tx, t, waveID, memberID, true, fn)
	})
}

// RecordWaveMembers is UpdateWaveMember for the wave's workflow, which is
// the source of truth of a running wave: every change in one transaction,
// states recorded as the workflow has them (no move check), counters,
// FailedFrom and the churn measure kept the same way.
func (s *Store) RecordWaveMembers(ctx context.Context, t Tenant, waveID string, changes []MemberChange) error {
	if len(changes) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		for _, ch := range changes {
			if err := s.updateMember(tx, t, waveID, ch.MemberID, false, ch.Apply); err != nil {
				return fmt.Errorf("member %s: %w", ch.MemberID, err)
			}
		}
		return nil
	})
}

// MemberChange is one member's change for RecordWaveMembers.
type MemberChange struct {
	MemberID string
	Apply    func(m *WaveMember) error
}

func (s *Store) updateMember(tx *gorm.DB, t Tenant, waveID, memberID string, checkMove bool, fn func(m *WaveMember) error) error {
	var m WaveMember
	q := s.forUpdate(tx.Where("domain_id = ? AND wave_id = ? AND id = ?", t.DomainID, waveID, memberID))
	if err := q.First(&m).Error; err != nil {
		return notFound(err)
	}
	before := m.State
	if err := fn(&m); err != nil {
		return err
	}
	if m.State != before {
		if checkMove {
			if err := wave.CheckMemberMove(before, m.State); err != nil {
				return err
			}
		}
		if m.State == wave.MemberFailed {
			m.FailedFrom = before
		}
	}
	if len(m.Churn) > MaxChurnSamples {
		m.Churn = append([]wave.SyncPass(nil), m.Churn[len(m.Churn)-MaxChurnSamples:]...)
	}
	m.ChurnBytesPerHour, m.ChurnIntervalSeconds = nil, nil
	if c, ok := wave.MeasureChurn(m.Churn); ok {
		iv := c.Interval.Seconds()
		m.ChurnBytesPerHour, m.ChurnIntervalSeconds = &c.BytesPerHour, &iv
	}
	m.ErrorMsg = truncate(m.ErrorMsg, 1024)
	m.UpdatedAt = time.Now().UTC()
	if err := tx.Model(&WaveMember{}).Where("domain_id = ? AND id = ?", t.DomainID, memberID).
		Select("*").Omit("id", "domain_id", "wave_id", "created_at").Updates(&m).Error; err != nil {
		return fmt.Errorf("update wave member: %w", err)
	}
	delta := map[string]any{}
	count := func(col string, st wave.MemberState) {
		switch {
		case before != st && m.State == st:
			delta[col] = gorm.Expr(col + " + 1")
		case before == st && m.State != st:
			delta[col] = gorm.Expr(col + " - 1")
		}
	}
	count("done_count", wave.MemberDone)
	count("failed_count", wave.MemberFailed)
	if len(delta) == 0 {
		return nil
	}
	return tx.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, waveID).Updates(delta).Error
}

// RecordWaveState records the state the wave's workflow is in, as it says
// (no life-cycle check: the workflow is the source of truth once it runs),
// stamping started_at and finished_at at at when asked (once).
func (s *Store) RecordWaveState(ctx context.Context, t Tenant, id string, state wave.WaveState, reason string,
	at time.Time, started, finished bool) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		w, err := s.lockTenantWave(tx, t, id)
		if err != nil {
			return err
		}
		at := at.UTC()
		if started && w.StartedAt == nil {
			w.StartedAt = &at
		}
		if finished && w.FinishedAt == nil {
			w.FinishedAt = &at
		}
		w.State, w.StateReason = state, truncate(reason, 1024)
		return saveWave(tx, t, w)
	})
}

// ActiveWaveOfSource returns the id of the active wave (any state but
// DRAFT, DONE, CANCELED) the source belongs to, "" when none.
func (s *Store) ActiveWaveOfSource(ctx context.Context, t Tenant, sourceID string) (string, error) {
	m, err := activeWaves(s.db.WithContext(ctx), t, []string{sourceID}, "", activeStates())
	return m[sourceID], err
}

// ActiveWavesOfSources is ActiveWaveOfSource for many sources in a few
// queries: source id → wave id, for those in an active wave other than
// except.
func (s *Store) ActiveWavesOfSources(ctx context.Context, t Tenant, sourceIDs []string, except string) (map[string]string, error) {
	return activeWaves(s.db.WithContext(ctx), t, dedupe(sourceIDs), except, activeStates())
}

// WaveTask is what a wave's show reads of each member's task.
type WaveTask struct {
	ID                       string
	State                    sms.TaskState
	Replicatesize, Totalsize int64
	MigrateSpeed             float64
	// ConsistencyResults are the agent's verification results: a member's
	// verification in the report when the workflow recorded none.
	ConsistencyResults []ConsistencyResult `gorm:"serializer:json"`
}

// WaveTasks reads the tasks of a wave in one query, by task id.
func (s *Store) WaveTasks(ctx context.Context, t Tenant, waveID string) (map[string]WaveTask, error) {
	var rows []WaveTask
	err := s.db.WithContext(ctx).Model(&Task{}).
		Select("id", "state", "replicatesize", "totalsize", "migrate_speed", "consistency_results").
		Where("domain_id = ? AND wave_id = ?", t.DomainID, waveID).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("wave tasks: %w", err)
	}
	out := make(map[string]WaveTask, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// WaveTaskProgress is WaveTasks without the verification results, scanned
// by hand: what a wave's show reads of each member's task (GORM's
// reflection and the results' JSON were half the query's time).
func (s *Store) WaveTaskProgress(ctx context.Context, t Tenant, waveID string) (map[string]WaveTask, error) {
	rows, err := s.db.WithContext(ctx).Model(&Task{}).
		Select("id", "state", "replicatesize", "totalsize", "migrate_speed").
		Where("domain_id = ? AND wave_id = ?", t.DomainID, waveID).Rows()
	if err != nil {
		return nil, fmt.Errorf("wave tasks: %w", err)
	}
	defer rows.Close()
	out := map[string]WaveTask{}
	for rows.Next() {
		var r WaveTask
		var state string
		if err := rows.Scan(&r.ID, &state, &r.Replicatesize, &r.Totalsize, &r.MigrateSpeed); err != nil {
			return nil, fmt.Errorf("wave tasks: %w", err)
		}
		r.State = sms.TaskState(state)
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("wave tasks: %w", err)
	}
	return out, nil
}

// dropMemberships refuses sources that a running wave holds
// (*SourceInWaveError) and removes the others from the waves they are in
// (DRAFT, SCHEDULED, finished), keeping those waves' member counts (source
// delete).
func dropMemberships(tx *gorm.DB, t Tenant, ids []string) error {
	in, err := activeWaves(tx, t, ids, "", runningStates())
	if err != nil {
		return err
	}
	if err := firstInWave(ids, in); err != nil {
		return err
	}
	var waves []string
	if err := tx.Model(&WaveMember{}).Distinct("wave_id").Where("domain_id = ? AND source_id IN ?", t.DomainID, ids).
		Pluck("wave_id", &waves).Error; err != nil {
		return fmt.Errorf("waves of sources: %w", err)
	}
	if len(waves) == 0 {
		return nil
	}
	if err := tx.Where("domain_id = ? AND source_id IN ?", t.DomainID, ids).Delete(&WaveMember{}).Error; err != nil {
		return fmt.Errorf("remove sources from waves: %w", err)
	}
	for _, w := range waves {
		var n int64
		if err := tx.Model(&WaveMember{}).Where("domain_id = ? AND wave_id = ?", t.DomainID, w).Count(&n).Error; err != nil {
			return err
		}
		if err := tx.Model(&Wave{}).Where("domain_id = ? AND id = ?", t.DomainID, w).Update("member_count", n).Error; err != nil {
			return err
		}
	}
	return nil
}

// SourceRef is a source as a wave's member list names it.
type SourceRef struct {
	ID, Name, IP  string
	State         sms.SourceState
	OSType        sms.OSType
	CurrentTaskID *string
	LastVisitTime int64
	Totalsize     int64
}

// FindSources reads the tenant's sources whose id, name or IP is among the
// given ones, in a few queries (members named in a wave or a CSV file).
// A name or IP may match several sources; the caller decides.
func (s *Store) FindSources(ctx context.Context, t Tenant, ids, names, ips []string) ([]SourceRef, error) {
	db := s.db.WithContext(ctx)
	seen := map[string]bool{}
	var out []SourceRef
	for _, q := range []struct {
		col  string
		vals []string
	}{{"id", dedupe(ids)}, {"name", dedupe(names)}, {"ip", dedupe(ips)}} {
		if err := inChunks(q.vals, func(chunk []string) error {
			var rows []SourceRef
			if err := db.Model(&Source{}).
				Select("id", "name", "ip", "state", "os_type", "current_task_id", "last_visit_time", "totalsize").
				Where("domain_id = ? AND "+q.col+" IN ?", t.DomainID, chunk).
				Order("reg_seq").Scan(&rows).Error; err != nil {
				return fmt.Errorf("find sources by %s: %w", q.col, err)
			}
			for _, r := range rows {
				if !seen[r.ID] {
					seen[r.ID] = true
					out = append(out, r)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
