package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// A migration changes the schema once; applied ones are recorded in
// schema_migrations and never run again. Each migration creates tables from
// its own frozen copy of the models (the m0001 types below), so later changes
// to the live models never alter what an old migration does.
type migration struct {
	ID string
	Up func(tx *gorm.DB) error
}

// schemaMigration records an applied migration.
type schemaMigration struct {
	ID        string    `gorm:"primaryKey;size:128"`
	AppliedAt time.Time `gorm:"not null"`
}

func (schemaMigration) TableName() string { return "schema_migrations" }

// migrations, in order. Append only; never edit one that has shipped.
var migrations = []migration{
	{ID: "0001_tenancy_migprojects_templates", Up: m0001},
	{ID: "0002_sources_commands", Up: m0002},
	{ID: "0003_tasks", Up: m0003},
	{ID: "0004_agent_logs", Up: m0004},
	{ID: "0005_waves", Up: m0005},
	{ID: "0006_task_speed_samples", Up: m0006},
	{ID: "0007_roles", Up: m0007},
}

// Migrate applies the pending migrations, each in its own transaction (MySQL
// commits DDL implicitly, so there a migration must be safe to re-run: every
// step checks before it creates).
func (s *Store) Migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if s.dialect == MySQL {
		// Two processes starting at once must not both migrate.
		conn, err := s.db.DB()
		if err != nil {
			return err
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer c.Close()
		var got int
		if err := c.QueryRowContext(ctx, "SELECT GET_LOCK('smsflow_migrate', 120)").Scan(&got); err != nil || got != 1 {
			return fmt.Errorf("migrate: cannot take the migration lock (got %d): %v", got, err)
		}
		defer c.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('smsflow_migrate')") //nolint:errcheck
	}
	if err := db.Migrator().AutoMigrate(&schemaMigration{}); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var done []string
	if err := db.Model(&schemaMigration{}).Pluck("id", &done).Error; err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	applied := make(map[string]bool, len(done))
	for _, id := range done {
		applied[id] = true
	}
	for _, m := range migrations {
		if applied[m.ID] {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := m.Up(tx); err != nil {
				return err
			}
			return tx.Create(&schemaMigration{ID: m.ID, AppliedAt: time.Now().UTC()}).Error
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.ID, err)
		}
		s.log.Info("schema migration applied", "id", m.ID)
	}
	return nil
}

// AppliedMigrations lists the recorded migration ids in order.
func (s *Store) AppliedMigrations(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&schemaMigration{}).Order("id").Pluck("id", &ids).Error
	return ids, err
}

// createTables creates each table that does not exist yet.
func createTables(tx *gorm.DB, models ...any) error {
	if tx.Dialector.Name() == "mysql" {
		// Binary collation: names compare exactly as on SQLite, whatever the
		// server's default collation is.
		tx = tx.Set("gorm:table_options", "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
	}
	m := tx.Migrator()
	for _, model := range models {
		if m.HasTable(model) {
			continue
		}
		if err := m.CreateTable(model); err != nil {
			return err
		}
	}
	return nil
}

// ---- 0001: domains, projects, users, access keys, tokens, migration
// projects, templates (frozen copies of the models as of this migration).

type m0001Domain struct {
	ID        string    `gorm:"primaryKey;size:64"`
	Name      string    `gorm:"size:64;uniqueIndex:uq_domains_name"`
	Enabled   bool      `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

func (m0001Domain) TableName() string { return "domains" }

type m0001Project struct {
	ID        string    `gorm:"primaryKey;size:64"`
	DomainID  string    `gorm:"size:64;not null;uniqueIndex:uq_projects_domain_name,priority:1"`
	Name      string    `gorm:"size:64;not null;uniqueIndex:uq_projects_domain_name,priority:2"`
	CreatedAt time.Time `gorm:"not null"`
}

func (m0001Project) TableName() string { return "projects" }

type m0001User struct {
	ID           string    `gorm:"primaryKey;size:64"`
	DomainID     string    `gorm:"size:64;not null;uniqueIndex:uq_users_domain_name,priority:1"`
	Name         string    `gorm:"size:64;not null;uniqueIndex:uq_users_domain_name,priority:2"`
	PasswordHash string    `gorm:"size:255;not null"`
	Enabled      bool      `gorm:"not null"`
	CreatedAt    time.Time `gorm:"not null"`
}

func (m0001User) TableName() string { return "users" }

type m0001AccessKey struct {
	AK          string     `gorm:"column:ak;primaryKey;size:64"`
	DomainID    string     `gorm:"size:64;not null;index:ix_access_keys_domain"`
	UserID      string     `gorm:"size:64;not null;index:ix_access_keys_user"`
	SKEnc       string     `gorm:"column:sk_enc;size:512;not null"`
	Description string     `gorm:"size:255;not null"`
	CreatedAt   time.Time  `gorm:"not null"`
	RevokedAt   *time.Time `gorm:""`
}

func (m0001AccessKey) TableName() string { return "access_keys" }

type m0001Token struct {
	Hash      string     `gorm:"primaryKey;size:64"`
	DomainID  string     `gorm:"size:64;not null;index:ix_tokens_domain"`
	UserID    string     `gorm:"size:64;not null;index:ix_tokens_user"`
	ProjectID string     `gorm:"size:64;not null"`
	ExpiresAt time.Time  `gorm:"not null;index:ix_tokens_expires"`
	CreatedAt time.Time  `gorm:"not null"`
	RevokedAt *time.Time `gorm:""`
}

func (m0001Token) TableName() string { return "tokens" }

type m0001MigProject struct {
	ID                string    `gorm:"primaryKey;size:64;index:ix_migprojects_list,priority:3"`
	DomainID          string    `gorm:"size:64;not null;uniqueIndex:uq_migprojects_domain_name,priority:1;index:ix_migprojects_list,priority:1"`
	Name              string    `gorm:"size:64;not null;uniqueIndex:uq_migprojects_domain_name,priority:2"`
	Description       string    `gorm:"size:1024;not null"`
	IsDefault         bool      `gorm:"not null"`
	DefaultFor        *string   `gorm:"size:64;uniqueIndex:uq_migprojects_default"`
	Region            string    `gorm:"size:1024;not null"`
	StartTargetServer bool      `gorm:"not null"`
	SpeedLimit        int32     `gorm:"not null"`
	UsePublicIP       bool      `gorm:"column:use_public_ip;not null"`
	ExistServer       bool      `gorm:"not null"`
	Type              string    `gorm:"size:32;not null"`
	EnterpriseProject string    `gorm:"size:1024;not null"`
	Syncing           bool      `gorm:"not null"`
	StartNetworkCheck bool      `gorm:"not null"`
	CreatedAt         time.Time `gorm:"not null;index:ix_migprojects_list,priority:2"`
	UpdatedAt         time.Time `gorm:"not null"`
}

func (m0001MigProject) TableName() string { return "mig_projects" }

type m0001Template struct {
	ID                string    `gorm:"primaryKey;size:64;index:ix_templates_list,priority:3"`
	DomainID          string    `gorm:"size:64;not null;uniqueIndex:uq_templates_domain_name,priority:1;index:ix_templates_list,priority:1"`
	ProjectID         string    `gorm:"column:project_id;size:255;not null"`
	Name              string    `gorm:"size:255;not null"`
	NameKey           *string   `gorm:"size:255;uniqueIndex:uq_templates_domain_name,priority:2"`
	IsTemplate        bool      `gorm:"not null"`
	Region            string    `gorm:"size:255;not null"`
	TargetServerName  string    `gorm:"size:255;not null"`
	AvailabilityZone  string    `gorm:"size:255;not null"`
	VolumeType        string    `gorm:"column:volume_type;size:16;not null"`
	Flavor            string    `gorm:"size:255;not null"`
	VPC               string    `gorm:"column:vpc;type:longtext"`
	NICs              string    `gorm:"column:nics;type:longtext"`
	SecurityGroups    string    `gorm:"type:longtext"`
	PublicIP          string    `gorm:"column:public_ip;type:longtext"`
	Disks             string    `gorm:"type:longtext"`
	DataVolumeType    string    `gorm:"size:16;not null"`
	TargetPasswordEnc string    `gorm:"size:4096;not null"`
	ImageID           string    `gorm:"size:255;not null"`
	CreatedAt         time.Time `gorm:"not null;index:ix_templates_list,priority:2"`
	UpdatedAt         time.Time `gorm:"not null"`
}

func (m0001Template) TableName() string { return "templates" }

// m0001TenantLock is one row per (tenant, scope) that check-then-insert
// transactions lock (see Store.lockTenant).
type m0001TenantLock struct {
	DomainID string `gorm:"primaryKey;size:64"`
	Scope    string `gorm:"primaryKey;size:64"`
	Version  int64  `gorm:"not null"`
}

func (m0001TenantLock) TableName() string { return "tenant_locks" }

func m0001(tx *gorm.DB) error {
	return createTables(tx,
		&m0001Domain{}, &m0001Project{}, &m0001User{}, &m0001AccessKey{}, &m0001Token{},
		&m0001MigProject{}, &m0001Template{}, &m0001TenantLock{})
}

// ---- 0002: sources and their command queue.

type m0002Source struct {
	ID                       string    `gorm:"primaryKey;size:64;index:ix_sources_list,priority:3;index:ix_sources_state,priority:4;index:ix_sources_migproject,priority:4;index:ix_sources_name,priority:4;index:ix_sources_ip,priority:4;index:ix_sources_cycle,priority:4"`
	DomainID                 string    `gorm:"size:64;not null;index:ix_sources_list,priority:1;uniqueIndex:uq_sources_machine,priority:1;index:ix_sources_state,priority:1;index:ix_sources_migproject,priority:1;index:ix_sources_visit,priority:1;index:ix_sources_name,priority:1;index:ix_sources_ip,priority:1;index:ix_sources_cycle,priority:1"`
	ProjectID                string    `gorm:"size:64;not null"`
	MigProjectID             string    `gorm:"size:64;not null;index:ix_sources_migproject,priority:2"`
	MachineKey               *string   `gorm:"size:128;uniqueIndex:uq_sources_machine,priority:2"`
	Name                     string    `gorm:"size:255;not null;index:ix_sources_name,priority:2"`
	Hostname                 string    `gorm:"size:255;not null"`
	IP                       string    `gorm:"column:ip;size:255;not null;index:ix_sources_ip,priority:2"`
	IPv6                     *string   `gorm:"column:ipv6;size:255"`
	OSType                   string    `gorm:"column:os_type;size:16;not null"`
	OSVersion                string    `gorm:"column:os_version;size:255;not null"`
	VirtualizationType       *string   `gorm:"size:255"`
	LinuxBlockCheck          *string   `gorm:"size:1024"`
	Firmware                 *string   `gorm:"size:16"`
	CPUQuantity              *int32    `gorm:"column:cpu_quantity"`
	Memory                   *int64    `gorm:""`
	HasRsync                 *bool     `gorm:""`
	Paravirtualization       *bool     `gorm:""`
	RawDevices               *string   `gorm:"size:255"`
	DriverFiles              *bool     `gorm:""`
	SystemServices           *bool     `gorm:""`
	AccountRights            *bool     `gorm:""`
	BootLoader               *string   `gorm:"size:16"`
	SystemDir                *string   `gorm:"size:255"`
	AgentVersion             string    `gorm:"size:255;not null"`
	KernelVersion            *string   `gorm:"size:255"`
	OEMSystem                *bool     `gorm:"column:oem_system"`
	StartType                *string   `gorm:"size:16"`
	IOReadWait               *float64  `gorm:"column:io_read_wait"`
	HasTc                    *bool     `gorm:""`
	Platform                 *string   `gorm:"size:16"`
	EnterpriseProjectID      string    `gorm:"size:255;not null"`
	State                    string    `gorm:"size:32;not null;index:ix_sources_state,priority:2"`
	MigrationCycle           string    `gorm:"size:32;not null;index:ix_sources_cycle,priority:2"`
	StateActionTime          int64     `gorm:"not null"`
	StageActionTime          int64     `gorm:"not null"`
	LastVisitTime            int64     `gorm:"not null;index:ix_sources_visit,priority:2;index:ix_sources_state,priority:5;index:ix_sources_cycle,priority:5;index:ix_sources_migproject,priority:5"`
	AddDate                  int64     `gorm:"not null"`
	RegSeq                   int64     `gorm:"not null;index:ix_sources_list,priority:2;index:ix_sources_state,priority:3;index:ix_sources_migproject,priority:3;index:ix_sources_name,priority:3;index:ix_sources_ip,priority:3;index:ix_sources_cycle,priority:3"`
	Replicatesize            int64     `gorm:"not null"`
	Totalsize                int64     `gorm:"not null"`
	IsConsistencyResultExist bool      `gorm:"not null"`
	ErrorJSON                string    `gorm:"column:error_json;type:longtext"`
	CurrentTaskID            *string   `gorm:"size:64"`
	UpdatedAt                time.Time `gorm:"not null"`
}

func (m0002Source) TableName() string { return "sources" }

type m0002SourceFacts struct {
	SourceID         string `gorm:"primaryKey;size:64"`
	DomainID         string `gorm:"size:64;not null;index:ix_source_facts_domain"`
	Disks            string `gorm:"type:longtext"`
	VolumeGroups     string `gorm:"type:longtext"`
	BtrfsList        string `gorm:"type:longtext"`
	Networks         string `gorm:"type:longtext"`
	Checks           string `gorm:"type:longtext"`
	InitTargetServer string `gorm:"type:longtext"`
}

func (m0002SourceFacts) TableName() string { return "source_facts" }

type m0002Command struct {
	Seq          int64      `gorm:"primaryKey;autoIncrement;index:ix_commands_source,priority:4;index:ix_commands_state,priority:2"`
	ID           string     `gorm:"size:64;not null;uniqueIndex:uq_commands_id"`
	DomainID     string     `gorm:"size:64;not null;index:ix_commands_source,priority:1"`
	SourceID     string     `gorm:"size:64;not null;index:ix_commands_source,priority:2"`
	Name         string     `gorm:"size:32;not null"`
	TaskID       string     `gorm:"size:64;not null"`
	Bucket       string     `gorm:"size:255;not null"`
	Params       string     `gorm:"type:longtext"`
	State        string     `gorm:"size:16;not null;index:ix_commands_source,priority:3;index:ix_commands_state,priority:1"`
	Deliveries   int32      `gorm:"not null"`
	Result       string     `gorm:"size:16;not null"`
	ResultDetail string     `gorm:"type:longtext"`
	CreatedAt    time.Time  `gorm:"not null"`
	IssuedAt     *time.Time `gorm:""`
	DoneAt       *time.Time `gorm:""`
}

func (m0002Command) TableName() string { return "commands" }

type m0002PrivacyAgreement struct {
	DomainID string    `gorm:"primaryKey;size:64"`
	UserID   string    `gorm:"size:64;not null"`
	SignedAt time.Time `gorm:"not null"`
}

func (m0002PrivacyAgreement) TableName() string { return "privacy_agreements" }

func m0002(tx *gorm.DB) error {
	return createTables(tx, &m0002Source{}, &m0002SourceFacts{}, &m0002Command{}, &m0002PrivacyAgreement{})
}

// ---- 0003: migration tasks.

type m0003Task struct {
	ID                     string    `gorm:"primaryKey;size:64;index:ix_tasks_list,priority:3"`
	DomainID               string    `gorm:"size:64;not null;index:ix_tasks_list,priority:1;index:ix_tasks_state,priority:1;index:ix_tasks_source,priority:1"`
	SourceID               string    `gorm:"size:64;not null;index:ix_tasks_source,priority:2"`
	MigProjectID           string    `gorm:"size:64;not null"`
	Name                   string    `gorm:"size:255;not null"`
	Type                   string    `gorm:"size:32;not null"`
	OSType                 string    `gorm:"column:os_type;size:16;not null"`
	State                  string    `gorm:"size:32;not null;index:ix_tasks_state,priority:2"`
	Priority               int32     `gorm:"not null"`
	SpeedLimit             int32     `gorm:"not null"`
	CurrentLimit           int32     `gorm:"not null"`
	CurrentThreshold       float64   `gorm:"not null"`
	OverSpeedThreshold     float64   `gorm:"not null"`
	StartTargetServer      bool      `gorm:"not null"`
	AutoStart              bool      `gorm:"not null"`
	MigrationIP            string    `gorm:"column:migration_ip;size:255;not null"`
	RegionName             string    `gorm:"size:255;not null"`
	RegionID               string    `gorm:"size:255;not null"`
	ProjectName            string    `gorm:"size:255;not null"`
	ProjectID              string    `gorm:"size:255;not null"`
	VMTemplateID           string    `gorm:"column:vm_template_id;size:255;not null"`
	CloneVMTemplateID      string    `gorm:"column:clone_vm_template_id;size:255;not null"`
	UsePublicIP            bool      `gorm:"column:use_public_ip;not null"`
	UseIPv6                bool      `gorm:"column:use_ipv6;not null"`
	Syncing                bool      `gorm:"not null"`
	ExistServer            bool      `gorm:"not null"`
	StartNetworkCheck      bool      `gorm:"not null"`
	IsNeedConsistencyCheck bool      `gorm:"not null"`
	NeedMigrationTest      bool      `gorm:"not null"`
	EnterpriseProjectID    string    `gorm:"size:255;not null"`
	CreateDate             int64     `gorm:"not null;index:ix_tasks_list,priority:2"`
	StartDate              int64     `gorm:"not null"`
	FinishDate             int64     `gorm:"not null"`
	EstimateCompleteTime   int64     `gorm:"not null"`
	RemainSeconds          int64     `gorm:"not null"`
	TotalTime              int64     `gorm:"not null"`
	LastProgressAt         int64     `gorm:"not null"`
	AgentTime              string    `gorm:"size:64;not null"`
	MigrateSpeed           float64   `gorm:"not null"`
	CompressRate           float64   `gorm:"not null"`
	Replicatesize          int64     `gorm:"not null"`
	Totalsize              int64     `gorm:"not null"`
	TotalCPUUsage          float64   `gorm:"column:total_cpu_usage;not null"`
	AgentCPUUsage          float64   `gorm:"column:agent_cpu_usage;not null"`
	TotalMemUsage          float64   `gorm:"not null"`
	AgentMemUsage          float64   `gorm:"not null"`
	TotalDiskIO            float64   `gorm:"column:total_disk_io;not null"`
	AgentDiskIO            float64   `gorm:"column:agent_disk_io;not null"`
	ErrorJSON              string    `gorm:"column:error_json;type:longtext"`
	LogCollectStatus       string    `gorm:"size:32;not null"`
	SubtaskInfo            string    `gorm:"type:longtext"`
	FailedStep             string    `gorm:"size:64;not null"`
	TargetStarted          bool      `gorm:"not null"`
	WorkflowID             string    `gorm:"size:255;not null"`
	TargetServer           string    `gorm:"type:longtext"`
	CloneServer            string    `gorm:"type:longtext"`
	SubTasks               string    `gorm:"type:longtext"`
	SpeedRules             string    `gorm:"type:longtext"`
	NetworkCheckInfo       string    `gorm:"type:longtext"`
	SpecialConfig          string    `gorm:"type:longtext"`
	ConsistencyResults     string    `gorm:"type:longtext"`
	CertPEM                string    `gorm:"type:longtext"`
	KeyPEMEnc              string    `gorm:"type:longtext"`
	CAPEM                  string    `gorm:"type:longtext"`
	PassphraseEnc          string    `gorm:"size:1024;not null"`
	UpdatedAt              time.Time `gorm:"not null"`
}

func (m0003Task) TableName() string { return "tasks" }

func m0003(tx *gorm.DB) error { return createTables(tx, &m0003Task{}) }

// m0004AgentLog is AgentLog as migration 0004 created it.
type m0004AgentLog struct {
	ID        uint64    `gorm:"primaryKey;autoIncrement"`
	DomainID  string    `gorm:"size:64;not null;index:ix_agent_logs_task,priority:1"`
	TaskID    string    `gorm:"size:64;not null;index:ix_agent_logs_task,priority:2"`
	Bucket    string    `gorm:"size:255;not null"`
	Size      int64     `gorm:"not null"`
	Gzip      []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

func (m0004AgentLog) TableName() string { return "agent_logs" }

func m0004(tx *gorm.DB) error { return createTables(tx, &m0004AgentLog{}) }

// ---- 0005: waves (batch plans), their members, and tasks.wave_id.

type m0005Wave struct {
	ID             string     `gorm:"primaryKey;size:64;index:ix_waves_list,priority:3;index:ix_waves_state,priority:4"`
	DomainID       string     `gorm:"size:64;not null;uniqueIndex:uq_waves_name,priority:1;index:ix_waves_list,priority:1;index:ix_waves_state,priority:1"`
	ProjectID      string     `gorm:"size:64;not null"`
	MigProjectID   string     `gorm:"size:64;not null;uniqueIndex:uq_waves_name,priority:2"`
	Name           string     `gorm:"size:255;not null;uniqueIndex:uq_waves_name,priority:3"`
	Description    string     `gorm:"size:1024;not null"`
	TaskDefaults   string     `gorm:"type:longtext"`
	StartAt        *time.Time `gorm:""`
	MaxConcurrent  int        `gorm:"not null"`
	Budget         string     `gorm:"type:longtext"`
	TimeZone       string     `gorm:"size:64;not null"`
	CutoverWindows string     `gorm:"type:longtext"`
	CutoverMode    string     `gorm:"size:16;not null"`
	TestFirst      bool       `gorm:"not null"`
	MaxFailures    int        `gorm:"not null"`
	DependsOn      string     `gorm:"size:64;not null"`
	State          string     `gorm:"size:32;not null;index:ix_waves_state,priority:2"`
	StateReason    string     `gorm:"size:1024;not null"`
	MemberCount    int        `gorm:"not null"`
	DoneCount      int        `gorm:"not null"`
	FailedCount    int        `gorm:"not null"`
	NextRunAt      *time.Time `gorm:""`
	StartedAt      *time.Time `gorm:""`
	FinishedAt     *time.Time `gorm:""`
	CreatedAt      time.Time  `gorm:"not null;index:ix_waves_list,priority:2;index:ix_waves_state,priority:3"`
	UpdatedAt      time.Time  `gorm:"not null"`
}

func (m0005Wave) TableName() string { return "waves" }

type m0005WaveMember struct {
	ID                   string     `gorm:"primaryKey;size:64"`
	DomainID             string     `gorm:"size:64;not null;index:ix_wave_members_wave,priority:1;index:ix_wave_members_source,priority:1"`
	WaveID               string     `gorm:"size:64;not null;index:ix_wave_members_wave,priority:2;uniqueIndex:uq_wave_members_source,priority:1"`
	Position             int        `gorm:"not null;index:ix_wave_members_wave,priority:3"`
	SourceID             string     `gorm:"size:64;not null;uniqueIndex:uq_wave_members_source,priority:2;index:ix_wave_members_source,priority:2"`
	SourceName           string     `gorm:"size:255;not null"`
	TargetName           string     `gorm:"size:255;not null"`
	TemplateID           string     `gorm:"size:64;not null"`
	DiskSizesGiB         string     `gorm:"column:disk_sizes_gib;type:longtext"`
	Priority             int32      `gorm:"not null"`
	State                string     `gorm:"size:32;not null"`
	FailedFrom           string     `gorm:"size:32;not null"`
	TaskID               *string    `gorm:"size:64"`
	ErrorCode            string     `gorm:"size:32;not null"`
	ErrorMsg             string     `gorm:"size:1024;not null"`
	CopyStartedAt        *time.Time `gorm:""`
	CopyEndedAt          *time.Time `gorm:""`
	SyncedAt             *time.Time `gorm:""`
	CutoverStartedAt     *time.Time `gorm:""`
	TargetStartedAt      *time.Time `gorm:""`
	DowntimeSeconds      *float64   `gorm:""`
	BytesMoved           int64      `gorm:"not null"`
	BytesTotal           int64      `gorm:"not null"`
	Verification         string     `gorm:"size:32;not null"`
	Churn                string     `gorm:"type:longtext"`
	ChurnBytesPerHour    *float64   `gorm:""`
	ChurnIntervalSeconds *float64   `gorm:""`
	ShareMbps            int32      `gorm:"not null"`
	LastSpeedMbps        float64    `gorm:"not null"`
	CreatedAt            time.Time  `gorm:"not null"`
	UpdatedAt            time.Time  `gorm:"not null"`
}

func (m0005WaveMember) TableName() string { return "wave_members" }

// m0005TaskWave is the column 0005 adds to tasks.
type m0005TaskWave struct {
	ID       string  `gorm:"primaryKey;size:64"`
	DomainID string  `gorm:"size:64;not null;index:ix_tasks_wave,priority:1"`
	WaveID   *string `gorm:"size:64;index:ix_tasks_wave,priority:2"`
}

func (m0005TaskWave) TableName() string { return "tasks" }

func m0005(tx *gorm.DB) error {
	if err := createTables(tx, &m0005Wave{}, &m0005WaveMember{}); err != nil {
		return err
	}
	m := tx.Migrator()
	if !m.HasColumn(&m0005TaskWave{}, "wave_id") {
		if err := m.AddColumn(&m0005TaskWave{}, "WaveID"); err != nil {
			return fmt.Errorf("add tasks.wave_id: %w", err)
		}
	}
	if !m.HasIndex(&m0005TaskWave{}, "ix_tasks_wave") {
		if err := m.CreateIndex(&m0005TaskWave{}, "ix_tasks_wave"); err != nil {
			return fmt.Errorf("index tasks.wave_id: %w", err)
		}
	}
	return nil
}

// ---- 0006: a task's speed over its life, for the console's chart.

type m0006TaskSpeedSample struct {
	ID         int64   `gorm:"primaryKey;autoIncrement"`
	DomainID   string  `gorm:"size:64;not null;index:ix_task_speed_samples,priority:1"`
	TaskID     string  `gorm:"size:64;not null;index:ix_task_speed_samples,priority:2"`
	AtMs       int64   `gorm:"not null;index:ix_task_speed_samples,priority:3"`
	Mbps       float64 `gorm:"not null"`
	LimitMbps  int32   `gorm:"not null"`
	Replicated int64   `gorm:"not null"`
}

func (m0006TaskSpeedSample) TableName() string { return "task_speed_samples" }

func m0006(tx *gorm.DB) error { return createTables(tx, &m0006TaskSpeedSample{}) }

// ---- 0007: roles of users and access keys, and the source an agent's key
// is bound to. Rows from before roles existed could do everything: they
// become admin, so nothing that worked stops working.

type m0007User struct {
	ID   string `gorm:"primaryKey;size:64"`
	Role string `gorm:"size:16;not null;default:admin"`
}

func (m0007User) TableName() string { return "users" }

type m0007AccessKey struct {
	AK       string  `gorm:"column:ak;primaryKey;size:64"`
	Role     string  `gorm:"size:16;not null;default:admin"`
	SourceID *string `gorm:"size:64"`
}

func (m0007AccessKey) TableName() string { return "access_keys" }

func m0007(tx *gorm.DB) error {
	m := tx.Migrator()
	for _, c := range []struct {
		model       any
		field, name string
	}{
		{&m0007User{}, "Role", "role"},
		{&m0007AccessKey{}, "Role", "role"},
		{&m0007AccessKey{}, "SourceID", "source_id"},
	} {
		if m.HasColumn(c.model, c.name) {
			continue
		}
		if err := m.AddColumn(c.model, c.field); err != nil {
			return fmt.Errorf("add column %s: %w", c.name, err)
		}
	}
	// Before roles, the Temporal UI (every domain's runs) opened to the
	// bootstrap user alone (user "admin" of domain "smsflow": iam's
	// BootstrapUser and BootstrapDomain). Admin now opens it to every admin
	// of that domain, so its other users become operators: exactly the
	// rights they had.
	if err := tx.Exec("UPDATE users SET role = ? WHERE name <> ? AND domain_id IN (SELECT id FROM domains WHERE name = ?)",
		"operator", "admin", "smsflow").Error; err != nil {
		return fmt.Errorf("bootstrap domain's other users: %w", err)
	}
	return nil
}
