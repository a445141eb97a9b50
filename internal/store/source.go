package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/smsflow/smsflow/internal/sms"
)

// Source is a source server registered by its agent (§4.1).
type Source struct {
	ID           string `gorm:"primaryKey;size:64"`
	DomainID     string `gorm:"size:64;not null"`
	ProjectID    string `gorm:"size:64;not null"`
	MigProjectID string `gorm:"size:64;not null"`
	// MachineKey identifies the machine across agent restarts and
	// re-installs, so registering again returns the same source (see
	// web/source.go for how it is derived). NULL when nothing identifies it.
	MachineKey *string `gorm:"size:128"`

	Name                string     `gorm:"size:255;not null"`
	Hostname            string     `gorm:"size:255;not null"`
	IP                  string     `gorm:"column:ip;size:255;not null"`
	IPv6                *string    `gorm:"column:ipv6;size:255"`
	OSType              sms.OSType `gorm:"column:os_type;size:16;not null"`
	OSVersion           string     `gorm:"column:os_version;size:255;not null"`
	VirtualizationType  *string    `gorm:"size:255"`
	LinuxBlockCheck     *string    `gorm:"size:1024"`
	Firmware            *string    `gorm:"size:16"`
	CPUQuantity         *int32     `gorm:"column:cpu_quantity"`
	Memory              *int64     `gorm:""`
	HasRsync            *bool      `gorm:""`
	Paravirtualization  *bool      `gorm:""`
	RawDevices          *string    `gorm:"size:255"`
	DriverFiles         *bool      `gorm:""`
	SystemServices      *bool      `gorm:""`
	AccountRights       *bool      `gorm:""`
	BootLoader          *string    `gorm:"size:16"`
	SystemDir           *string    `gorm:"size:255"`
	AgentVersion        string     `gorm:"size:255;not null"`
	KernelVersion       *string    `gorm:"size:255"`
	OEMSystem           *bool      `gorm:"column:oem_system"`
	StartType           *string    `gorm:"size:16"`
	IOReadWait          *float64   `gorm:"column:io_read_wait"`
	HasTc               *bool      `gorm:""`
	Platform            *string    `gorm:"size:16"`
	EnterpriseProjectID string     `gorm:"size:255;not null"`

	State          sms.SourceState `gorm:"size:32;not null"`
	MigrationCycle sms.Cycle       `gorm:"size:32;not null"`
	// Times are epoch milliseconds, as the API answers them.
	StateActionTime int64 `gorm:"not null"`
	StageActionTime int64 `gorm:"not null"`
	LastVisitTime   int64 `gorm:"not null"`
	AddDate         int64 `gorm:"not null"`
	// RegSeq orders sources by registration (nanoseconds at creation): the
	// list's stable order, finer than add_date's milliseconds.
	RegSeq int64 `gorm:"not null"`

	Replicatesize            int64   `gorm:"not null"`
	Totalsize                int64   `gorm:"not null"`
	IsConsistencyResultExist bool    `gorm:"not null"`
	ErrorJSON                string  `gorm:"column:error_json;type:longtext"`
	CurrentTaskID            *string `gorm:"size:64"`

	// The facts below live in source_facts, one row per source: they are
	// large (kilobytes per server), and keeping them out of the sources table
	// keeps its rows small, so filtering and counting 10,000 sources reads
	// little.
	Disks        []SourceDisk       `gorm:"-"`
	VolumeGroups []VolumeGroup      `gorm:"-"`
	BtrfsList    []BtrfsFileSystem  `gorm:"-"`
	Networks     []Network          `gorm:"-"`
	Checks       []EnvironmentCheck `gorm:"-"`
	// InitTargetServer is the recommended target layout, computed from the
	// disks and volume groups whenever they change and kept as JSON text, so
	// a page of 200 sources is answered without decoding every disk.
	InitTargetServer string `gorm:"-"`

	UpdatedAt time.Time `gorm:"not null"`
}

// SourceFacts is the source_facts row of a source.
type SourceFacts struct {
	SourceID         string             `gorm:"primaryKey;size:64"`
	DomainID         string             `gorm:"size:64;not null"`
	Disks            []SourceDisk       `gorm:"type:longtext;serializer:json"`
	VolumeGroups     []VolumeGroup      `gorm:"type:longtext;serializer:json"`
	BtrfsList        []BtrfsFileSystem  `gorm:"type:longtext;serializer:json"`
	Networks         []Network          `gorm:"type:longtext;serializer:json"`
	Checks           []EnvironmentCheck `gorm:"type:longtext;serializer:json"`
	InitTargetServer string             `gorm:"type:longtext"`
}

func (SourceFacts) TableName() string { return "source_facts" }

func factsOf(src *Source) *SourceFacts {
	return &SourceFacts{SourceID: src.ID, DomainID: src.DomainID, Disks: src.Disks, VolumeGroups: src.VolumeGroups,
		BtrfsList: src.BtrfsList, Networks: src.Networks, Checks: src.Checks, InitTargetServer: src.InitTargetServer}
}

func (src *Source) setFacts(f *SourceFacts) {
	src.Disks, src.VolumeGroups, src.BtrfsList = f.Disks, f.VolumeGroups, f.BtrfsList
	src.Networks, src.Checks, src.InitTargetServer = f.Networks, f.Checks, f.InitTargetServer
}

// loadFacts fills src's facts from source_facts.
func loadFacts(tx *gorm.DB, src *Source) error {
	var f SourceFacts
	err := tx.Where("source_id = ?", src.ID).Take(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load source facts: %w", err)
	}
	src.setFacts(&f)
	return nil
}

// saveFacts writes src's facts (insert or replace).
func saveFacts(tx *gorm.DB, src *Source) error {
	f := factsOf(src)
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "source_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"disks", "volume_groups", "btrfs_list", "networks", "checks", "init_target_server"})}).
		Create(f).Error
	if err != nil {
		return fmt.Errorf("save source facts: %w", err)
	}
	return nil
}

// SourceListRow is what a list answer needs of a source: no disk, network
// or btrfs JSON is read.
type SourceListRow struct {
	ID                       string
	IP                       string
	Name                     string
	EnterpriseProjectID      string
	AddDate                  int64
	OSType                   sms.OSType
	OSVersion                string
	OEMSystem                *bool
	State                    sms.SourceState
	LastVisitTime            int64
	CPUQuantity              *int32
	Memory                   *int64
	Checks                   string `gorm:"-"`
	InitTargetServer         string `gorm:"-"`
	Replicatesize            int64
	StageActionTime          int64
	Totalsize                int64
	MigrationCycle           sms.Cycle
	StateActionTime          int64
	IsConsistencyResultExist bool
	HasTc                    *bool
	StartType                *string
	CurrentTaskID            *string
	Hostname                 string
	ErrorJSON                string
}

var sourceListColumns = []string{"id", "ip", "name", "enterprise_project_id", "add_date", "os_type", "os_version",
	"oem_system", "state", "last_visit_time", "cpu_quantity", "memory",
	"replicatesize", "stage_action_time", "totalsize", "migration_cycle", "state_action_time",
	"is_consistency_result_exist", "has_tc", "start_type", "current_task_id", "hostname", "error_json"}

// SourceFilter holds the list filters of §4.1.3; zero values match all.
type SourceFilter struct {
	ID, Name, IP, State, MigProjectID, MigrationCycle, EnterpriseProjectID string
	// IPv6 matches the source's IPv6 address; the spec has ip take
	// precedence, so it applies only when IP is empty.
	IPv6 string
	// VMID matches the platform id (vm_id) of the target or clone server
	// of the source's current task.
	VMID string
	// Connected filters on the agent having polled since ConnectedSince.
	Connected                *bool
	ConnectedSince           int64
	IsConsistencyResultExist *bool
	// ErrorsOnly keeps sources in state error (GET /v3/errors).
	ErrorsOnly bool
}

func (f SourceFilter) apply(q *gorm.DB, domainID string) *gorm.DB {
	q = whereIs(q, "id", f.ID)
	q = whereIs(q, "name", f.Name)
	q = whereIs(q, "ip", f.IP)
	if f.IP == "" {
		q = whereIs(q, "ipv6", f.IPv6)
	}
	q = whereIs(q, "state", f.State)
	if f.VMID != "" {
		q = q.Where("current_task_id IN (?)", tasksWithVM(q.Session(&gorm.Session{NewDB: true}), domainID, f.VMID))
	}
	if f.ErrorsOnly {
		q = q.Where("state = ?", sms.SourceError)
	}
	q = whereIs(q, "mig_project_id", f.MigProjectID)
	q = whereIs(q, "migration_cycle", f.MigrationCycle)
	q = whereIs(q, "enterprise_project_id", f.EnterpriseProjectID)
	if f.Connected != nil {
		// With an equality filter beside it, the unary plus keeps the
		// planner on that filter's (domain, column, reg_seq, id) index, which
		// also gives the page order; alone, the visit index serves.
		col := "last_visit_time"
		if f.ID != "" || f.Name != "" || f.IP != "" || f.IPv6 != "" || f.VMID != "" || f.State != "" || f.ErrorsOnly || f.MigProjectID != "" || f.MigrationCycle != "" {
			col = "+last_visit_time"
		}
		if *f.Connected {
			q = q.Where(col+" >= ?", f.ConnectedSince)
		} else {
			q = q.Where(col+" < ?", f.ConnectedSince)
		}
	}
	if f.IsConsistencyResultExist != nil {
		q = q.Where("is_consistency_result_exist = ?", *f.IsConsistencyResultExist)
	}
	return q
}

// tasksWithVM selects the ids of the domain's tasks whose target or clone
// server has the platform id vmID. Both servers are JSON this server
// encodes (encoding/json, compact), so the id appears as exactly
// "vm_id":<its JSON string>; a LIKE on that text finds it without a column
// of its own (the filter is rare and scoped to one domain's tasks).
func tasksWithVM(db *gorm.DB, domainID, vmID string) *gorm.DB {
	enc, _ := json.Marshal(vmID) // a string always encodes
	pattern := "%" + likeEscaper.Replace(`"vm_id":`+string(enc)) + "%"
	return db.Model(&Task{}).Select("id").
		Where("domain_id = ? AND (target_server LIKE ? ESCAPE '!' OR clone_server LIKE ? ESCAPE '!')", domainID, pattern, pattern)
}

// likeEscaper escapes LIKE's wildcards with '!' (one escape character that
// SQLite and MySQL read alike, unlike the backslash).
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// Sources lists a page of the tenant's sources matching f (oldest first) and
// the count of all matches, with each row's checks and recommended target
// (GET /v3/sources): four queries whatever the page size.
func (s *Store) Sources(ctx context.Context, t Tenant, f SourceFilter, pg Page) ([]SourceListRow, int64, error) {
	out, total, err := s.SourceRows(ctx, t, f, pg)
	if err != nil {
		return nil, 0, err
	}
	if err := s.pageFacts(ctx, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// SourceRows is Sources without the checks and recommended targets (left
// empty): the console's table shows neither, and skips their query and
// JSON.
func (s *Store) SourceRows(ctx context.Context, t Tenant, f SourceFilter, pg Page) ([]SourceListRow, int64, error) {
	q := f.apply(s.db.WithContext(ctx).Model(&Source{}).Where("domain_id = ?", t.DomainID), t.DomainID)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count sources: %w", err)
	}
	out := []SourceListRow{}
	if pg.Limit == 0 || int64(pg.Offset) >= total {
		return out, total, nil
	}
	// Deferred join: page through the ids on an index alone, then read the
	// page's rows by id; a deep offset then skips index entries, not rows.
	var ids []string
	if err := q.Order("reg_seq, id").Limit(pg.Limit).Offset(pg.Offset).Pluck("id", &ids).Error; err != nil {
		return nil, 0, fmt.Errorf("list source ids: %w", err)
	}
	if len(ids) == 0 {
		return out, total, nil
	}
	var rows []SourceListRow
	if err := s.db.WithContext(ctx).Model(&Source{}).Select(sourceListColumns).
		Where("domain_id = ? AND id IN ?", t.DomainID, ids).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("list sources: %w", err)
	}
	byID := make(map[string]int, len(rows))
	for i, r := range rows {
		byID[r.ID] = i
	}
	out = make([]SourceListRow, 0, len(ids))
	for _, id := range ids {
		if i, ok := byID[id]; ok {
			out = append(out, rows[i])
		}
	}
	return out, total, nil
}

// pageFacts reads the checks and recommended targets of a page's sources in
// one query (a third query per page, never one per row).
func (s *Store) pageFacts(ctx context.Context, rows []SourceListRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var facts []struct {
		SourceID         string
		Checks           string
		InitTargetServer string
	}
	if err := s.db.WithContext(ctx).Table("source_facts").Select("source_id", "checks", "init_target_server").
		Where("source_id IN ?", ids).Find(&facts).Error; err != nil {
		return fmt.Errorf("list source facts: %w", err)
	}
	byID := make(map[string]int, len(facts))
	for i, f := range facts {
		byID[f.SourceID] = i
	}
	for i := range rows {
		if j, ok := byID[rows[i].ID]; ok {
			rows[i].Checks, rows[i].InitTargetServer = facts[j].Checks, facts[j].InitTargetServer
		}
	}
	return nil
}

// Source loads one source of the tenant, with all its facts.
func (s *Store) Source(ctx context.Context, t Tenant, id string) (*Source, error) {
	var src Source
	db := s.db.WithContext(ctx)
	if err := db.Where("domain_id = ? AND id = ?", t.DomainID, id).First(&src).Error; err != nil {
		return nil, notFound(err)
	}
	if err := loadFacts(db, &src); err != nil {
		return nil, err
	}
	return &src, nil
}

// sourceTx reads the tenant's source id with its facts inside tx; lock
// takes its row lock (SELECT … FOR UPDATE) on MySQL (SQLite has one writer
// at a time).
func (s *Store) sourceTx(tx *gorm.DB, t Tenant, id string, lock bool) (*Source, error) {
	q := tx.Where("domain_id = ? AND id = ?", t.DomainID, id)
	if lock {
		q = s.forUpdate(q)
	}
	src, err := first[Source](q)
	if err != nil {
		return nil, err
	}
	if err := loadFacts(tx, src); err != nil {
		return nil, err
	}
	return src, nil
}

// Registration is a register call: the facts, how to find an earlier
// registration of the same machine, and where to put a new one.
type Registration struct {
	Source *Source
	// BodyID is the "id" the agent sent (a source it registered before).
	BodyID string
	// MigProjectID is where a new source goes; empty = the default project,
	// created ("default") when the tenant has none yet.
	MigProjectID string
	NewID        func() string
	// AgentKey is the access key of an agent registering: the source
	// registered is bound to it (the first registration binds), and a key
	// bound to another source fails with ErrBoundElsewhere, nothing written.
	AgentKey string
}

// RegisterSource inserts a source, or updates the facts of the machine's
// earlier registration and returns its id. It reports whether it created.
func (s *Store) RegisterSource(ctx context.Context, t Tenant, r Registration) (string, bool, error) {
	src := r.Source
	var id string
	var created bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		created = false
		if err := s.lockTenant(tx, t.DomainID, "sources"); err != nil {
			return err
		}
		prev, err := s.findRegistration(tx, t, r.BodyID, src.MachineKey)
		if err != nil {
			return err
		}
		if prev != nil && r.AgentKey != "" {
			if err := bindAccessKey(tx, t.DomainID, r.AgentKey, prev.ID, false); err != nil {
				return err
			}
		}
		if prev != nil {
			id = prev.ID
			AssignFactIDs(src.Disks, src.VolumeGroups, prev.Disks, prev.VolumeGroups, r.NewID)
			src.ID = prev.ID
			cols := registeredColumns
			if src.MachineKey != nil && (prev.MachineKey == nil || *prev.MachineKey != *src.MachineKey) {
				// Found by its id but reporting another machine's identity
				// (say a disk image restored elsewhere): keep the source's
				// key if another source already holds the new one.
				var n int64
				if err := tx.Model(&Source{}).Where("domain_id = ? AND machine_key = ? AND id <> ?",
					t.DomainID, *src.MachineKey, prev.ID).Count(&n).Error; err != nil {
					return err
				}
				if n > 0 {
					cols = cols[1:] // registeredColumns[0] is machine_key
				}
			}
			src.DomainID = t.DomainID
			if err := tx.Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, prev.ID).
				Select(cols).Updates(src).Error; err != nil {
				return err
			}
			return saveFacts(tx, src)
		}
		mp, err := s.targetMigProject(tx, t, r.MigProjectID)
		if err != nil {
			return err
		}
		AssignFactIDs(src.Disks, src.VolumeGroups, nil, nil, r.NewID)
		src.DomainID, src.ProjectID, src.MigProjectID = t.DomainID, t.ProjectID, mp.ID
		if src.ID == "" {
			src.ID = r.NewID()
		}
		if src.RegSeq == 0 {
			src.RegSeq = time.Now().UnixNano()
		}
		if err := tx.Create(src).Error; err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("source: %w", ErrDuplicate)
			}
			return fmt.Errorf("create source: %w", err)
		}
		if err := saveFacts(tx, src); err != nil {
			return err
		}
		if r.AgentKey != "" {
			if err := bindAccessKey(tx, t.DomainID, r.AgentKey, src.ID, true); err != nil {
				return err
			}
		}
		id, created = src.ID, true
		return nil
	})
	return id, created, err
}

// registeredColumns are what a re-registration refreshes: the machine's
// facts. Name, migration project, state and operator choices are kept.
var registeredColumns = []string{"machine_key", "hostname", "ip", "ipv6", "os_type", "os_version", "virtualization_type",
	"linux_block_check", "firmware", "cpu_quantity", "memory", "has_rsync", "paravirtualization", "raw_devices",
	"driver_files", "system_services", "account_rights", "boot_loader", "system_dir", "agent_version",
	"kernel_version", "oem_system", "start_type", "io_read_wait", "has_tc", "platform", "totalsize",
	"last_visit_time", "updated_at"}

func (s *Store) findRegistration(tx *gorm.DB, t Tenant, bodyID string, key *string) (*Source, error) {
	if bodyID != "" {
		prev, err := s.sourceTx(tx, t, bodyID, true)
		if err == nil {
			return prev, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if key == nil {
		return nil, nil
	}
	var prev Source
	err := tx.Where("domain_id = ? AND machine_key = ?", t.DomainID, *key).First(&prev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := loadFacts(tx, &prev); err != nil {
		return nil, err
	}
	return &prev, nil
}

// targetMigProject resolves where a new source goes.
func (s *Store) targetMigProject(tx *gorm.DB, t Tenant, id string) (*MigProject, error) {
	var mp MigProject
	if id != "" {
		if err := tx.Where("domain_id = ? AND id = ?", t.DomainID, id).First(&mp).Error; err != nil {
			return nil, fmt.Errorf("migration project %s: %w", id, notFound(err))
		}
		return &mp, nil
	}
	err := tx.Where("domain_id = ? AND is_default = ?", t.DomainID, true).First(&mp).Error
	if err == nil {
		return &mp, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, err
	}
	// First source of a tenant without projects: create its default project.
	mp = MigProject{ID: uuid.NewString(), Name: "default", Description: "created for the first registered source",
		Region: "", StartTargetServer: true, UsePublicIP: true, ExistServer: true, Type: sms.MigrateBlock,
		EnterpriseProject: "default"}
	if err := s.createMigProjectTx(tx, t, &mp); err != nil {
		return nil, err
	}
	return &mp, nil
}

// UpdateSource loads a source in a transaction, lets fn change it and
// saves every column fn may touch.
func (s *Store) UpdateSource(ctx context.Context, t Tenant, id string, fn func(src *Source) error) error {
	return s.updateSource(ctx, t, id, nil, fn)
}

// MoveSource is UpdateSource that first moves the source to the tenant's
// migration project migProjectID (nothing to move when it is there
// already). A project the tenant does not have is a *MigProjectMissingError,
// returned before fn runs.
func (s *Store) MoveSource(ctx context.Context, t Tenant, id, migProjectID string, fn func(src *Source) error) error {
	return s.updateSource(ctx, t, id, &migProjectID, fn)
}

// migProjectExists tells, inside a transaction, whether a migration project
// is the tenant's.
func migProjectExists(tx *gorm.DB, t Tenant, id string) (bool, error) {
	var n int64
	err := tx.Model(&MigProject{}).Where("domain_id = ? AND id = ?", t.DomainID, id).Count(&n).Error
	return n > 0, err
}

// MigProjectMissingError: the migration project a source is moved to is
// not the tenant's. It does not match ErrNotFound, which callers read as
// "no such source".
type MigProjectMissingError struct{ ID string }

func (e *MigProjectMissingError) Error() string { return "store: no such migration project: " + e.ID }

func (s *Store) updateSource(ctx context.Context, t Tenant, id string, migProjectID *string, fn func(src *Source) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		src, err := s.sourceTx(tx, t, id, true)
		if err != nil {
			return err
		}
		if migProjectID != nil && *migProjectID != src.MigProjectID {
			ok, err := migProjectExists(tx, t, *migProjectID)
			if err != nil {
				return err
			}
			if !ok {
				return &MigProjectMissingError{ID: *migProjectID}
			}
			src.MigProjectID = *migProjectID
		}
		if err := fn(src); err != nil {
			return err
		}
		src.UpdatedAt = time.Now().UTC()
		if err := tx.Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, id).
			Select("name", "mig_project_id", "totalsize", "state", "migration_cycle", "state_action_time",
				"stage_action_time", "error_json", "updated_at").
			Updates(src).Error; err != nil {
			return err
		}
		return saveFacts(tx, src)
	})
}

// BusyError names sources a task is working on.
type BusyError struct{ IDs []string }

func (e *BusyError) Error() string        { return fmt.Sprintf("store: sources busy: %v", e.IDs) }
func (e *BusyError) Is(target error) bool { return target == ErrInUse }

// DeleteSources deletes the tenant's sources, all or none: an unknown id
// fails with *MissingError, a source in a busy state (isBusy) with
// *BusyError, a member of a running wave with *SourceInWaveError (members
// of other waves leave them). Their queued commands go with them.
func (s *Store) DeleteSources(ctx context.Context, t Tenant, ids []string, isBusy func(state string) bool) error {
	uniq := dedupe(ids)
	if len(uniq) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var rows []struct {
			ID    string
			State string
		}
		if err := tx.Model(&Source{}).Select("id", "state").Where("domain_id = ? AND id IN ?", t.DomainID, uniq).
			Find(&rows).Error; err != nil {
			return fmt.Errorf("find sources: %w", err)
		}
		have := make(map[string]bool, len(rows))
		var busy []string
		for _, r := range rows {
			have[r.ID] = true
			if isBusy(r.State) {
				busy = append(busy, r.ID)
			}
		}
		var missing []string
		for _, id := range uniq {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return &MissingError{IDs: missing}
		}
		if len(busy) > 0 {
			return &BusyError{IDs: busy}
		}
		if err := dropMemberships(tx, t, uniq); err != nil {
			return err
		}
		if err := tx.Where("domain_id = ? AND source_id IN ?", t.DomainID, uniq).Delete(&Command{}).Error; err != nil {
			return fmt.Errorf("delete commands: %w", err)
		}
		if err := tx.Where("domain_id = ? AND source_id IN ?", t.DomainID, uniq).Delete(&SourceFacts{}).Error; err != nil {
			return fmt.Errorf("delete source facts: %w", err)
		}
		return tx.Where("domain_id = ? AND id IN ?", t.DomainID, uniq).Delete(&Source{}).Error
	})
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// SourceStateCount is one row of the overview.
type SourceStateCount struct {
	State      string
	Configured bool
	N          int64
}

// SourceOverview counts the tenant's sources per state, separating those
// with a task (configured) from those without.
func (s *Store) SourceOverview(ctx context.Context, t Tenant) ([]SourceStateCount, error) {
	var out []SourceStateCount
	err := s.db.WithContext(ctx).Model(&Source{}).
		Select("state, current_task_id IS NOT NULL AS configured, COUNT(*) AS n").
		Where("domain_id = ?", t.DomainID).Group("state, current_task_id IS NOT NULL").Scan(&out).Error
	return out, err
}

// TouchSource stamps the agent's visit (last_visit_time) if the stored one is
// older than minAgeMs, so 1,000 agents polling every second cost a write per
// agent every few seconds, not every second.
func (s *Store) TouchSource(ctx context.Context, t Tenant, id string, nowMs, minAgeMs int64) error {
	return s.db.WithContext(ctx).Model(&Source{}).
		Where("domain_id = ? AND id = ? AND last_visit_time < ?", t.DomainID, id, nowMs-minAgeMs).
		Update("last_visit_time", nowMs).Error
}

// SourceExists tells whether the tenant has the source (cheap check for
// agent polls).
func (s *Store) SourceExists(ctx context.Context, t Tenant, id string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, id).Limit(1).Count(&n).Error
	return n > 0, err
}

// BulkInsertSources inserts ready-made sources with their facts in batches,
// in one transaction (seeding benchmarks and load tests; an import tool).
func (s *Store) BulkInsertSources(ctx context.Context, srcs []Source) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		facts := make([]SourceFacts, len(srcs))
		for i := range srcs {
			facts[i] = *factsOf(&srcs[i])
		}
		if err := tx.CreateInBatches(srcs, 200).Error; err != nil {
			return fmt.Errorf("insert sources: %w", err)
		}
		if err := tx.CreateInBatches(facts, 200).Error; err != nil {
			return fmt.Errorf("insert source facts: %w", err)
		}
		return nil
	})
}

// SourcesByID reads the list rows of the given sources in one query.
func (s *Store) SourcesByID(ctx context.Context, t Tenant, ids []string) ([]SourceListRow, error) {
	var rows []SourceListRow
	if len(ids) == 0 {
		return rows, nil
	}
	err := s.db.WithContext(ctx).Model(&Source{}).Select(sourceListColumns).
		Where("domain_id = ? AND id IN ?", t.DomainID, ids).Find(&rows).Error
	return rows, err
}
