package web

import (
	"fmt"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// putVolumeBody and its kin are the update body (table 4-42). The spec names the volume group list
// "volume_group_s", the SDK "volume_groups": both are read. relation_name
// on a disk is our extension (the target disk a source disk maps to).
type putVolumeBody struct {
	ID            *string `json:"id"`
	NeedMigration *bool   `json:"need_migration"`
	AdjustSize    *int64  `json:"adjust_size"`
}

type putDiskBody struct {
	ID              *string          `json:"id"`
	NeedMigration   *bool            `json:"need_migration"`
	AdjustSize      *int64           `json:"adjust_size"`
	RelationName    *string          `json:"relation_name"`
	PhysicalVolumes *[]putVolumeBody `json:"physical_volumes"`
}

type putVolumeGroupBody struct {
	ID             *string          `json:"id"`
	NeedMigration  *bool            `json:"need_migration"`
	AdjustSize     *int64           `json:"adjust_size"`
	LogicalVolumes *[]putVolumeBody `json:"logical_volumes"`
}

type updateSourceBody struct {
	Name             *string               `json:"name"`
	MigProjectID     *string               `json:"migprojectid"`
	Disks            *[]putDiskBody        `json:"disks"`
	VolumeGroups     *[]putVolumeGroupBody `json:"volume_groups"`
	VolumeGroupsSpec *[]putVolumeGroupBody `json:"volume_group_s"`
}

func (b *updateSourceBody) validate() error {
	var v checks
	v.str("name", b.Name, optional, 0, 255)
	v.str("migprojectid", b.MigProjectID, optional, 0, 255)
	vol := func(path string, x putVolumeBody, idRequired bool) {
		v.str(path+"id", x.ID, requiredIf(idRequired), 0, 255)
		between(&v, path+"adjust_size", x.AdjustSize, optional, 0, layout.MaxDiskSize)
	}
	if b.Disks != nil {
		for i, d := range *b.Disks {
			f := fmt.Sprintf("disks[%d].", i)
			v.str(f+"id", d.ID, required, 0, 255)
			between(&v, f+"adjust_size", d.AdjustSize, optional, 0, layout.MaxDiskSize)
			v.str(f+"relation_name", d.RelationName, optional, 0, 255)
			if d.PhysicalVolumes != nil {
				for j, p := range *d.PhysicalVolumes {
					vol(fmt.Sprintf("%sphysical_volumes[%d].", f, j), p, false)
				}
			}
		}
	}
	for _, vgs := range []*[]putVolumeGroupBody{b.VolumeGroups, b.VolumeGroupsSpec} {
		if vgs == nil {
			continue
		}
		for i, g := range *vgs {
			f := fmt.Sprintf("volume_groups[%d].", i)
			v.str(f+"id", g.ID, required, 0, 255)
			between(&v, f+"adjust_size", g.AdjustSize, optional, 0, layout.MaxDiskSize)
			if g.LogicalVolumes != nil {
				for j, l := range *g.LogicalVolumes {
					vol(fmt.Sprintf("%slogical_volumes[%d].", f, j), l, true)
				}
			}
		}
	}
	return v.err()
}

// apply writes the operator's choices onto the stored facts; an id that
// names nothing of this source is a 400 naming it.
func (b *updateSourceBody) apply(src *store.Source) error {
	if b.Name != nil {
		src.Name = *b.Name
	}
	disks := map[string]*store.SourceDisk{}
	pvs := map[string]*store.PhysicalVolume{}
	for i := range src.Disks {
		d := &src.Disks[i]
		disks[ptr.Deref(d.ID)] = d
		for j := range d.PhysicalVolumes {
			pvs[ptr.Deref(d.PhysicalVolumes[j].ID)] = &d.PhysicalVolumes[j]
		}
	}
	var unknown []string
	if b.Disks != nil {
		for _, pd := range *b.Disks {
			d := disks[ptr.Deref(pd.ID)]
			if d == nil {
				unknown = append(unknown, "disks.id="+ptr.Deref(pd.ID))
				continue
			}
			d.NeedMigration = firstPtr(pd.NeedMigration, d.NeedMigration)
			d.AdjustSize = firstPtr(pd.AdjustSize, d.AdjustSize)
			d.RelationName = firstPtr(pd.RelationName, d.RelationName)
			if pd.PhysicalVolumes != nil {
				for _, pv := range *pd.PhysicalVolumes {
					p := pvs[ptr.Deref(pv.ID)]
					if p == nil {
						unknown = append(unknown, "physical_volumes.id="+ptr.Deref(pv.ID))
						continue
					}
					p.NeedMigration = firstPtr(pv.NeedMigration, p.NeedMigration)
					p.AdjustSize = firstPtr(pv.AdjustSize, p.AdjustSize)
				}
			}
		}
	}
	vgs := map[string]*store.VolumeGroup{}
	lvs := map[string]*store.LogicalVolume{}
	for i := range src.VolumeGroups {
		g := &src.VolumeGroups[i]
		vgs[ptr.Deref(g.ID)] = g
		for j := range g.LogicalVolumes {
			lvs[ptr.Deref(g.LogicalVolumes[j].ID)] = &g.LogicalVolumes[j]
		}
	}
	for _, list := range []*[]putVolumeGroupBody{b.VolumeGroups, b.VolumeGroupsSpec} {
		if list == nil {
			continue
		}
		for _, pg := range *list {
			g := vgs[ptr.Deref(pg.ID)]
			if g == nil {
				unknown = append(unknown, "volume_groups.id="+ptr.Deref(pg.ID))
				continue
			}
			g.NeedMigration = firstPtr(pg.NeedMigration, g.NeedMigration)
			g.AdjustSize = firstPtr(pg.AdjustSize, g.AdjustSize)
			if pg.LogicalVolumes != nil {
				for _, pl := range *pg.LogicalVolumes {
					l := lvs[ptr.Deref(pl.ID)]
					if l == nil {
						unknown = append(unknown, "logical_volumes.id="+ptr.Deref(pl.ID))
						continue
					}
					l.NeedMigration = firstPtr(pl.NeedMigration, l.NeedMigration)
					l.AdjustSize = firstPtr(pl.AdjustSize, l.AdjustSize)
				}
			}
		}
	}
	if len(unknown) > 0 {
		e := smserr.New(smserr.SMS9001, unknown...)
		for _, u := range unknown {
			e = e.WithDetail(u + ": no such item on this source (ids are in GET /v3/sources/{id})")
		}
		return e
	}
	return nil
}

func firstPtr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}
