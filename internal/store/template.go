package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// MaxTemplatesPerTenant is the hosted service's quota (SMS.8115).
const MaxTemplatesPerTenant = 50

// VPC, NIC, SecurityGroup, PublicIP and TemplateDisk are a template's nested
// objects, kept as the client sent them (JSON columns).
type VPC struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	CIDR *string `json:"cidr,omitempty"`
}

type NIC struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	CIDR string  `json:"cidr"`
	IP   *string `json:"ip,omitempty"`
}

type SecurityGroup struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type PublicIP struct {
	Type               string  `json:"type"`
	BandwidthSize      int32   `json:"bandwidth_size"`
	BandwidthShareType *string `json:"bandwidth_share_type,omitempty"`
}

type TemplateDisk struct {
	ID        *int64  `json:"id,omitempty"`
	Index     int32   `json:"index"`
	Name      string  `json:"name"`
	DiskType  string  `json:"disktype"`
	Size      int64   `json:"size"`
	DeviceUse *string `json:"device_use,omitempty"`
}

// Template is a target-server template (§4.4).
type Template struct {
	ID       string `gorm:"primaryKey;size:64"`
	DomainID string `gorm:"size:64;not null;uniqueIndex:uq_templates_domain_name,priority:1"`
	// ProjectID is the spec's `projectid`: the project the target lives in.
	ProjectID string `gorm:"column:project_id;size:255;not null"`
	Name      string `gorm:"size:255;not null"`
	// NameKey is Name when non-empty and NULL otherwise: names are unique per
	// tenant, but the spec allows empty names (console-made task templates),
	// and NULLs never collide in a unique index.
	NameKey           *string         `gorm:"size:255;uniqueIndex:uq_templates_domain_name,priority:2"`
	IsTemplate        bool            `gorm:"not null"`
	Region            string          `gorm:"size:255;not null"`
	TargetServerName  string          `gorm:"size:255;not null"`
	AvailabilityZone  string          `gorm:"size:255;not null"`
	VolumeType        string          `gorm:"column:volume_type;size:16;not null"`
	Flavor            string          `gorm:"size:255;not null"`
	VPC               *VPC            `gorm:"column:vpc;type:longtext;serializer:json"`
	NICs              []NIC           `gorm:"column:nics;type:longtext;serializer:json"`
	SecurityGroups    []SecurityGroup `gorm:"type:longtext;serializer:json"`
	PublicIP          *PublicIP       `gorm:"column:public_ip;type:longtext;serializer:json"`
	Disks             []TemplateDisk  `gorm:"type:longtext;serializer:json"`
	DataVolumeType    string          `gorm:"size:16;not null"`
	TargetPasswordEnc string          `gorm:"size:4096;not null"`
	ImageID           string          `gorm:"size:255;not null"`
	CreatedAt         time.Time       `gorm:"not null"`
	UpdatedAt         time.Time       `gorm:"not null"`
}

func nameKey(name string) *string {
	if name == "" {
		return nil
	}
	n := name
	return &n
}

// CreateTemplate inserts a template, refusing a duplicate name (ErrDuplicate)
// and the 51st template of a tenant (ErrLimit). The count and the insert share
// a transaction so two concurrent creates cannot both pass the quota.
func (s *Store) CreateTemplate(ctx context.Context, t Tenant, tpl *Template) error {
	tpl.DomainID = t.DomainID
	tpl.NameKey = nameKey(tpl.Name)
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockTenant(tx, t.DomainID, "templates"); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Template{}).Where("domain_id = ?", t.DomainID).Count(&n).Error; err != nil {
			return fmt.Errorf("count templates: %w", err)
		}
		if n >= MaxTemplatesPerTenant {
			return fmt.Errorf("%d templates: %w", n, ErrLimit)
		}
		return insertNamed(tx, tpl, "template", tpl.Name)
	})
}

// Template finds one template of the tenant.
func (s *Store) Template(ctx context.Context, t Tenant, id string) (*Template, error) {
	return first[Template](s.db.WithContext(ctx).Where("domain_id = ? AND id = ?", t.DomainID, id))
}

// TemplateDoc is a template as the API shows it: its scalar columns, and its
// nested objects as the JSON the json serializer wrote from Template's typed
// fields (so already in the API's shape), to pass through: decoding a list
// page's five JSON columns per row, to encode them again unchanged, was a
// third of the list's CPU. It has no password column, so a read for display
// never loads the sealed password.
type TemplateDoc struct {
	ID               string
	ProjectID        string
	Name             string
	IsTemplate       bool
	Region           string
	TargetServerName string
	AvailabilityZone string
	VolumeType       string
	Flavor           string
	VPC              string `gorm:"column:vpc"`
	NICs             string `gorm:"column:nics"`
	SecurityGroups   string
	PublicIP         string `gorm:"column:public_ip"`
	Disks            string
	DataVolumeType   string
	ImageID          string
}

// TemplateDoc finds one template of the tenant, for display.
func (s *Store) TemplateDoc(ctx context.Context, t Tenant, id string) (*TemplateDoc, error) {
	return first[TemplateDoc](s.db.WithContext(ctx).Model(&Template{}).Where("domain_id = ? AND id = ?", t.DomainID, id))
}

// TemplateFilter holds the list filters of §4.4.2; empty fields match all.
type TemplateFilter struct {
	ID               string
	Name             string
	AvailabilityZone string
	Region           string
}

// Templates lists a page of the tenant's templates matching f, for display,
// and the count of all matches.
func (s *Store) Templates(ctx context.Context, t Tenant, f TemplateFilter, pg Page) ([]TemplateDoc, int64, error) {
	q := s.db.WithContext(ctx).Model(&Template{}).Where("domain_id = ?", t.DomainID)
	q = whereIs(q, "id", f.ID)
	q = whereIs(q, "name", f.Name)
	q = whereIs(q, "availability_zone", f.AvailabilityZone)
	q = whereIs(q, "region", f.Region)
	return listPage[TemplateDoc](q, "created_at, id", pg, "templates")
}

// UpdateTemplate replaces a template's fields (the handler merges the request
// into the current row first).
func (s *Store) UpdateTemplate(ctx context.Context, t Tenant, tpl *Template) error {
	tpl.DomainID = t.DomainID
	tpl.NameKey = nameKey(tpl.Name)
	res := s.db.WithContext(ctx).Model(&Template{}).Where("domain_id = ? AND id = ?", t.DomainID, tpl.ID).
		Select("*").Omit("id", "domain_id", "created_at").Updates(tpl)
	if res.Error != nil {
		if isUniqueViolation(res.Error) {
			return fmt.Errorf("template %q: %w", tpl.Name, ErrDuplicate)
		}
		return fmt.Errorf("update template: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTemplates deletes the tenant's templates with the given ids, all or
// none: an unknown id (or another tenant's) fails the whole call with
// ErrNotFound and deletes nothing.
func (s *Store) DeleteTemplates(ctx context.Context, t Tenant, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	uniq := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var found []string
		if err := tx.Model(&Template{}).Where("domain_id = ? AND id IN ?", t.DomainID, uniq).Pluck("id", &found).Error; err != nil {
			return fmt.Errorf("find templates: %w", err)
		}
		if len(found) != len(uniq) {
			have := make(map[string]bool, len(found))
			for _, id := range found {
				have[id] = true
			}
			var missing []string
			for _, id := range uniq {
				if !have[id] {
					missing = append(missing, id)
				}
			}
			return &MissingError{IDs: missing}
		}
		if err := tx.Where("domain_id = ? AND id IN ?", t.DomainID, uniq).Delete(&Template{}).Error; err != nil {
			return fmt.Errorf("delete templates: %w", err)
		}
		return nil
	})
}
