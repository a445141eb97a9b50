package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/sms"
)

// MigProject is a migration project (§4.5): default settings for the sources
// registered into it.
type MigProject struct {
	ID          string `gorm:"primaryKey;size:64"`
	DomainID    string `gorm:"size:64;not null;uniqueIndex:uq_migprojects_domain_name,priority:1"`
	Name        string `gorm:"size:64;not null;uniqueIndex:uq_migprojects_domain_name,priority:2"`
	Description string `gorm:"size:1024;not null"`
	IsDefault   bool   `gorm:"not null"`
	// DefaultFor holds the domain id while this is the domain's default and
	// NULL otherwise: a unique index on it lets the database itself refuse a
	// second default, on SQLite and MySQL alike.
	DefaultFor        *string      `gorm:"size:64;uniqueIndex"`
	Region            string       `gorm:"size:1024;not null"`
	StartTargetServer bool         `gorm:"not null"`
	SpeedLimit        int32        `gorm:"not null"`
	UsePublicIP       bool         `gorm:"column:use_public_ip;not null"`
	ExistServer       bool         `gorm:"not null"`
	Type              sms.TaskType `gorm:"size:32;not null"`
	EnterpriseProject string       `gorm:"size:1024;not null"`
	Syncing           bool         `gorm:"not null"`
	StartNetworkCheck bool         `gorm:"not null"`
	CreatedAt         time.Time    `gorm:"not null"`
	UpdatedAt         time.Time    `gorm:"not null"`
}

// CreateMigProject inserts a migration project. The domain's first project
// becomes its default whatever the request says; a second default is refused
// (ErrConflict) — moving the default is SetDefaultMigProject's job.
func (s *Store) CreateMigProject(ctx context.Context, t Tenant, p *MigProject) error {
	return s.tx(ctx, func(tx *gorm.DB) error { return s.createMigProjectTx(tx, t, p) })
}

func (s *Store) createMigProjectTx(tx *gorm.DB, t Tenant, p *MigProject) error {
	p.DomainID = t.DomainID
	if err := s.lockTenant(tx, t.DomainID, "migprojects"); err != nil {
		return err
	}
	var n int64
	if err := tx.Model(&MigProject{}).Where("domain_id = ?", t.DomainID).Count(&n).Error; err != nil {
		return fmt.Errorf("count migration projects: %w", err)
	}
	if n == 0 {
		p.IsDefault = true
	} else if p.IsDefault {
		return fmt.Errorf("a default migration project exists: %w", ErrConflict)
	}
	p.DefaultFor = defaultFor(p.IsDefault, t.DomainID)
	return insertNamed(tx, p, "migration project", p.Name)
}

func defaultFor(isDefault bool, domainID string) *string {
	if !isDefault {
		return nil
	}
	d := domainID
	return &d
}

// MigProject finds one project of the tenant.
func (s *Store) MigProject(ctx context.Context, t Tenant, id string) (*MigProject, error) {
	return first[MigProject](s.db.WithContext(ctx).Where("domain_id = ? AND id = ?", t.DomainID, id))
}

// DefaultMigProject finds the tenant's default project.
func (s *Store) DefaultMigProject(ctx context.Context, t Tenant) (*MigProject, error) {
	return first[MigProject](s.db.WithContext(ctx).Where("domain_id = ? AND is_default = ?", t.DomainID, true))
}

// Page is a window of a list: Limit 0 means no row (the spec allows it; the
// count is still returned).
type Page struct {
	Limit  int
	Offset int
}

// MigProjects lists a page of the tenant's projects and the total count,
// oldest first.
func (s *Store) MigProjects(ctx context.Context, t Tenant, pg Page) ([]MigProject, int64, error) {
	q := s.db.WithContext(ctx).Model(&MigProject{}).Where("domain_id = ?", t.DomainID)
	return listPage[MigProject](q, "created_at, id", pg, "migration projects")
}

// UpdateMigProject writes the changed fields of a project. Making it the
// default is refused when another project is default (ErrConflict); clearing
// the default flag of the default project is refused too, since the domain
// would be left without one.
func (s *Store) UpdateMigProject(ctx context.Context, t Tenant, p *MigProject) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var cur MigProject
		if err := tx.Where("domain_id = ? AND id = ?", t.DomainID, p.ID).First(&cur).Error; err != nil {
			return notFound(err)
		}
		if cur.IsDefault && !p.IsDefault {
			return fmt.Errorf("the default migration project cannot stop being default: %w", ErrConflict)
		}
		if !cur.IsDefault && p.IsDefault {
			return fmt.Errorf("a default migration project exists: %w", ErrConflict)
		}
		p.DomainID = t.DomainID
		p.CreatedAt = cur.CreatedAt
		p.DefaultFor = defaultFor(p.IsDefault, t.DomainID)
		err := tx.Model(&MigProject{}).Where("domain_id = ? AND id = ?", t.DomainID, p.ID).
			Select("name", "description", "region", "start_target_server", "speed_limit", "use_public_ip",
				"exist_server", "type", "enterprise_project", "syncing", "start_network_check", "updated_at").
			Updates(p).Error
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("migration project %q: %w", p.Name, ErrDuplicate)
			}
			return fmt.Errorf("update migration project: %w", err)
		}
		return nil
	})
}

// SetDefaultMigProject makes a project the tenant's only default.
func (s *Store) SetDefaultMigProject(ctx context.Context, t Tenant, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var cur MigProject
		if err := tx.Where("domain_id = ? AND id = ?", t.DomainID, id).First(&cur).Error; err != nil {
			return notFound(err)
		}
		if cur.IsDefault {
			return nil
		}
		// Clear first: the unique index on default_for allows one default.
		if err := tx.Model(&MigProject{}).Where("domain_id = ? AND is_default = ?", t.DomainID, true).
			Updates(map[string]any{"is_default": false, "default_for": nil}).Error; err != nil {
			return fmt.Errorf("clear default migration project: %w", err)
		}
		return tx.Model(&MigProject{}).Where("domain_id = ? AND id = ?", t.DomainID, id).
			Updates(map[string]any{"is_default": true, "default_for": t.DomainID, "updated_at": time.Now().UTC()}).Error
	})
}

// DeleteMigProject removes a project that is not the default and that no
// source uses (the usage counters run inside the same transaction).
func (s *Store) DeleteMigProject(ctx context.Context, t Tenant, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var cur MigProject
		if err := tx.Where("domain_id = ? AND id = ?", t.DomainID, id).First(&cur).Error; err != nil {
			return notFound(err)
		}
		if cur.IsDefault {
			return fmt.Errorf("default migration project: %w", ErrDefaultProject)
		}
		n, err := migProjectSources(tx, t.DomainID, id)
		if err != nil {
			return fmt.Errorf("count migration project sources: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("migration project holds %d sources: %w", n, ErrInUse)
		}
		return tx.Where("domain_id = ? AND id = ?", t.DomainID, id).Delete(&MigProject{}).Error
	})
}

// migProjectSources counts the sources registered into a project.
func migProjectSources(tx *gorm.DB, domainID, projectID string) (int64, error) {
	var n int64
	err := tx.Model(&Source{}).Where("domain_id = ? AND mig_project_id = ?", domainID, projectID).Count(&n).Error
	return n, err
}
