package discover

import (
	"sort"
	"strconv"
	"strings"
)

// btrfsProfiles are the names sysfs gives allocation profiles
// (/sys/fs/btrfs/<uuid>/allocation/data/<profile>/).
var btrfsProfiles = map[string]bool{"single": true, "dup": true, "raid0": true, "raid1": true, "raid10": true,
	"raid5": true, "raid6": true, "raid1c3": true, "raid1c4": true}

func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// btrfsList reports the btrfs file systems of /sys/fs/btrfs. Sizes,
// profiles and devices come from sysfs; subvolumes are those mounted
// (mountinfo's subvolid= and subvol= options): listing the unmounted ones
// needs the btrfs ioctls. The default subvolume is taken to be the one at
// the shortest mount point.
func (d *disco) btrfsList() []Btrfs {
	out := []Btrfs{}
	for _, id := range d.e.names("/sys/fs/btrfs") {
		dir := "/sys/fs/btrfs/" + id
		if !looksLikeUUID(id) || !d.e.isDir(dir) {
			continue
		}
		fs := Btrfs{UUID: id, Label: d.e.line(dir + "/label"), GlobalReserve1: "single", Subvolumn: []BtrfsSubvol{}}
		fs.Nodesize, _ = d.e.int64(dir + "/nodesize")
		if ss, ok := d.e.int64(dir + "/sectorsize"); ok {
			fs.Sectorsize = int32(ss)
		}
		devs := map[string]bool{}
		var paths []string
		for _, n := range d.e.names(dir + "/devices") {
			devs[n] = true
			b := d.devs[n]
			if b != nil {
				paths = append(paths, b.path())
			} else {
				paths = append(paths, "/dev/"+strings.ReplaceAll(n, "!", "/"))
			}
		}
		if len(paths) > 0 {
			fs.Name = paths[0]
		}
		fs.Device = strings.Join(paths, ";")
		for _, kind := range []string{"data", "metadata", "system"} {
			a := dir + "/allocation/" + kind
			used, _ := d.e.int64(a + "/bytes_used")
			disk, ok := d.e.int64(a + "/disk_used")
			if !ok {
				disk, _ = d.e.int64(a + "/total_bytes")
			}
			fs.Size += used
			fs.GVolUsedSize += disk
			profile := ""
			for _, p := range d.e.names(a) {
				if btrfsProfiles[p] && d.e.isDir(a+"/"+p) {
					profile = p
					break
				}
			}
			switch kind {
			case "data":
				fs.DataProfile = profile
			case "metadata":
				fs.MetadataProfile = profile
			case "system":
				fs.SystemProfile = profile
			}
		}
		d.btrfsSubvolumes(&fs, devs)
		out = append(out, fs)
	}
	return out
}

func (d *disco) btrfsSubvolumes(fs *Btrfs, devs map[string]bool) {
	type sv struct {
		id, name, mp string
	}
	byID := map[string]*sv{}
	var ids []string
	primary := ""
	for _, m := range d.mounts {
		if m.FSType != "btrfs" || !devs[d.resolve(m.Source)] {
			continue
		}
		id, _ := opt(m.SuperOpts, "subvolid")
		name, _ := opt(m.SuperOpts, "subvol")
		if id == "" {
			continue
		}
		name = strings.TrimPrefix(name, "/")
		if s, ok := byID[id]; ok {
			if len(m.MountPoint) < len(s.mp) {
				s.mp = m.MountPoint
			}
		} else {
			byID[id] = &sv{id: id, name: name, mp: m.MountPoint}
			ids = append(ids, id)
		}
		if primary == "" || len(m.MountPoint) < len(byID[primary].mp) {
			primary = id
		}
	}
	if primary != "" {
		p := byID[primary]
		fs.DefaultSubvolID, fs.DefaultSubvolName, fs.DefaultSubvolMountpath = p.id, p.name, p.mp
		if p.id == "5" {
			fs.DefaultSubvolName = "<FS_TREE>"
		}
	}
	fs.DefaultSubvolIDSpec = fs.DefaultSubvolID
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.Atoi(ids[i])
		b, _ := strconv.Atoi(ids[j])
		return a < b
	})
	for _, id := range ids {
		s := byID[id]
		if id == "5" { // the top level is not a subvolume
			continue
		}
		// The parent is the longest mounted subvolume whose path holds
		// this one; else the top level (5).
		parent, plen := "5", -1
		for _, o := range byID {
			if o.id != "5" && o.id != id && strings.HasPrefix(s.name, o.name+"/") && len(o.name) > plen {
				parent, plen = o.id, len(o.name)
			}
		}
		snap := "false"
		if strings.Contains("/"+s.name, "/.snapshots/") {
			snap = "true"
		}
		fs.Subvolumn = append(fs.Subvolumn, BtrfsSubvol{UUID: fs.UUID, IsSnapshot: snap, SubvolID: id, ParentID: parent,
			SubvolName: s.name, SubvolMountPath: s.mp})
	}
}
