package discover

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/smsflow/smsflow/agent/procfs"
)

// blockDev is a block device of /sys/block: a disk, one of its partitions,
// or a virtual device (device mapper, md RAID).
type blockDev struct {
	Name   string // sysfs name: vda, vda1, dm-0, nvme0n1p2, cciss!c0d0
	Dev    string // "major:minor"
	Size   int64  // bytes
	Disk   string // a partition's disk; "" for a whole device
	Part   int    // partition number
	Start  int64  // a partition's offset in bytes
	LBS    int    // logical block size of a disk
	Slaves []string
	DMName string // device mapper name (vg-lv)
	DMUUID string // device mapper uuid (LVM-...)
}

// path is the device's name in /dev.
func (b *blockDev) path() string {
	if b.DMName != "" {
		return "/dev/mapper/" + b.DMName
	}
	return "/dev/" + strings.ReplaceAll(b.Name, "!", "/")
}

// virtualName tells a device that stacks on others (dm, md) from a disk.
func virtualName(n string) bool {
	return strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "md")
}

// skippedDisk are the block devices that are never migrated as disks.
func skippedDisk(n string) bool {
	for _, p := range []string{"loop", "ram", "zram", "sr", "dm-", "md", "fd", "nbd", "nullb"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// scanBlock reads /sys/block: every device and its partitions.
func scanBlock(e *env) (map[string]*blockDev, []string) {
	devs := map[string]*blockDev{}
	var names []string
	for _, n := range e.names("/sys/block") {
		dir := "/sys/block/" + n
		sectors, ok := e.int64(dir + "/size")
		if !ok {
			continue
		}
		b := &blockDev{Name: n, Dev: e.line(dir + "/dev"), Size: sectors * 512, LBS: 512,
			Slaves: e.names(dir + "/slaves"), DMName: e.line(dir + "/dm/name"), DMUUID: e.line(dir + "/dm/uuid")}
		if lbs, ok := e.int64(dir + "/queue/logical_block_size"); ok && lbs > 0 {
			b.LBS = int(lbs)
		}
		devs[n] = b
		names = append(names, n)
		for _, sub := range e.names(dir) {
			pdir := dir + "/" + sub
			num, ok := e.int64(pdir + "/partition")
			if !ok {
				continue
			}
			ps, _ := e.int64(pdir + "/size")
			start, _ := e.int64(pdir + "/start")
			devs[sub] = &blockDev{Name: sub, Dev: e.line(pdir + "/dev"), Size: ps * 512, Disk: n, Part: int(num),
				Start: start * 512, Slaves: e.names(pdir + "/slaves")}
		}
	}
	return devs, names
}

// partitionsOf lists a disk's partitions by number.
func partitionsOf(devs map[string]*blockDev, disk string) []*blockDev {
	var out []*blockDev
	for _, b := range devs {
		if b.Disk == disk {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Part < out[j].Part })
	return out
}

// partName names partition n of a disk the kernel's way: vda1, nvme0n1p1.
func partName(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// isLV tells an LVM logical volume's dm uuid (LVM-<vg uuid><lv uuid>) from
// LVM's internal devices (the same with a -tpool, -tdata, ... suffix) and
// other dm targets (CRYPT-, mpath-).
func isLV(uuid string) bool { return strings.HasPrefix(uuid, "LVM-") && len(uuid) == 4+64 }

// splitDMName splits a device mapper name of an LV into VG and LV names:
// dashes inside either are doubled ("my--vg-root" is vg my-vg, lv root).
func splitDMName(n string) (vg, lv string, ok bool) {
	for i := 0; i < len(n); i++ {
		if n[i] != '-' {
			continue
		}
		if i+1 < len(n) && n[i+1] == '-' {
			i++
			continue
		}
		return strings.ReplaceAll(n[:i], "--", "-"), strings.ReplaceAll(n[i+1:], "--", "-"), i > 0 && i+1 < len(n)
	}
	return "", "", false
}

// disco is one discovery run's view of the block layer.
type disco struct {
	e      *env
	devs   map[string]*blockDev
	names  []string // /sys/block order
	byDev  map[string]string
	mounts []mount
	swaps  map[string]bool
	fs     map[string]fsInfo
}

func newDisco(e *env) *disco {
	d := &disco{e: e, byDev: map[string]string{}, swaps: map[string]bool{}, fs: map[string]fsInfo{}}
	d.devs, d.names = scanBlock(e)
	for n, b := range d.devs {
		if b.Dev != "" {
			d.byDev[b.Dev] = n
		}
	}
	if mi := e.read("/proc/self/mountinfo"); mi != "" {
		d.mounts = procfs.ParseMountinfo(mi)
	} else {
		d.mounts = procfs.ParseMounts(e.read("/proc/mounts"))
	}
	for _, s := range parseSwaps(e.read("/proc/swaps")) {
		if n := d.resolve(s); n != "" {
			d.swaps[n] = true
		}
	}
	return d
}

// resolve maps a device path (/dev/vda1, /dev/mapper/vg-lv, /dev/dm-0,
// /dev/vg/lv, /dev/disk/by-uuid/...) to a block device name.
func (d *disco) resolve(p string) string {
	if !strings.HasPrefix(p, "/dev/") {
		return ""
	}
	rest := p[len("/dev/"):]
	if m, ok := strings.CutPrefix(rest, "mapper/"); ok {
		for n, b := range d.devs {
			if b.DMName == m {
				return n
			}
		}
		return ""
	}
	if n := strings.ReplaceAll(rest, "/", "!"); d.devs[n] != nil {
		return n
	}
	if vg, lv, ok := strings.Cut(rest, "/"); ok && !strings.Contains(lv, "/") {
		dm := strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
		for n, b := range d.devs {
			if b.DMName == dm {
				return n
			}
		}
	}
	if t, err := filepath.EvalSymlinks(d.e.path(p)); err == nil {
		if n := filepath.Base(t); d.devs[n] != nil {
			return n
		}
	}
	return ""
}

// mountsOf lists the mounts of a block device: by device number, else (for
// btrfs, whose mounts carry an anonymous number, and /proc/mounts) by the
// mount's source.
func (d *disco) mountsOf(name string) []mount {
	b := d.devs[name]
	var out []mount
	for _, m := range d.mounts {
		if (m.Dev != "" && b.Dev != "" && m.Dev == b.Dev) || ((m.Dev == "" || m.FSType == "btrfs") && d.resolve(m.Source) == name) {
			out = append(out, m)
		}
	}
	return out
}

// mountOf is where a block device is mounted: the mount of the file
// system's root (for btrfs, any subvolume), with the shortest mount point.
// Bind mounts of a directory inside it (a container's /etc/hosts) do not
// count. statfsAt is a mount point for the file system's usage even then.
func (d *disco) mountOf(name string) (m mount, statfsAt string, ok bool) {
	for _, x := range d.mountsOf(name) {
		if statfsAt == "" || len(x.MountPoint) < len(statfsAt) {
			statfsAt = x.MountPoint
		}
		if x.Root != "/" && x.FSType != "btrfs" {
			continue
		}
		if !ok || len(x.MountPoint) < len(m.MountPoint) {
			m, ok = x, true
		}
	}
	if ok {
		statfsAt = m.MountPoint
	}
	return m, statfsAt, ok
}

// usage statfs'es the file system of a block device.
func (d *disco) usage(name string) (fsStat, bool) {
	_, at, _ := d.mountOf(name)
	if at == "" || d.e.statfs == nil {
		return fsStat{}, false
	}
	st, ok := d.e.statfs(at)
	if !ok || st.BlockSize <= 0 || st.Blocks < st.FreeBlocks {
		return fsStat{}, false
	}
	return st, true
}

// fsOf finds a block device's file system: the mount's type, an active
// swap, udev's database, else the superblock when the device can be read.
func (d *disco) fsOf(name string) fsInfo {
	if fi, ok := d.fs[name]; ok {
		return fi
	}
	b := d.devs[name]
	var fi fsInfo
	if m, _, ok := d.mountOf(name); ok {
		fi.Type = m.FSType
	} else if d.swaps[name] {
		fi.Type = "swap"
	}
	if b.Dev != "" {
		u := parseUdev(d.e.read("/run/udev/data/b" + b.Dev))
		if fi.Type == "" {
			fi.Type = u["ID_FS_TYPE"]
		}
		fi.UUID = u["ID_FS_UUID"]
	}
	for _, p := range []string{"/dev/" + strings.ReplaceAll(name, "!", "/"), b.path()} {
		f, err := os.Open(d.e.path(p))
		if err != nil {
			continue
		}
		pi, ok := probeFS(io.NewSectionReader(f, 0, max(b.Size, 1<<20)))
		f.Close()
		if ok {
			if fi.Type == "" {
				fi.Type = pi.Type
			}
			if fi.UUID == "" {
				fi.UUID = pi.UUID
			}
			if fi.Type == pi.Type {
				fi.InodeSize = pi.InodeSize
			}
		}
		break
	}
	d.fs[name] = fi
	return fi
}

// leaves are the disks and partitions under a (possibly stacked) device.
func (d *disco) leaves(name string, seen map[string]bool) []string {
	if seen[name] {
		return nil
	}
	seen[name] = true
	b := d.devs[name]
	if b == nil {
		return nil
	}
	if len(b.Slaves) == 0 {
		return []string{name}
	}
	var out []string
	for _, s := range b.Slaves {
		out = append(out, d.leaves(s, seen)...)
	}
	return out
}

// disksUnder lists the disk paths holding the file system mounted at mp.
func (d *disco) disksUnder(mp string) map[string]bool {
	out := map[string]bool{}
	for n := range d.devs {
		m, _, ok := d.mountOf(n)
		if !ok || m.MountPoint != mp {
			continue
		}
		for _, l := range d.leaves(n, map[string]bool{}) {
			disk := l
			if p := d.devs[l].Disk; p != "" {
				disk = p
			}
			out[d.devs[disk].path()] = true
		}
	}
	return out
}

// useOf is a partition's or volume's device_use.
func useOf(fsType, mountPoint string) string {
	switch {
	case fsType == "LVM2_member":
		return "VOLUME_GROUP"
	case fsType == "btrfs":
		return "BTRFS"
	case mountPoint == "/boot" || mountPoint == "/boot/efi":
		return "BOOT"
	case mountPoint == "/":
		return "OS"
	}
	return "NORMAL"
}

// volume describes a partition (or a whole-disk file system) as a
// PhysicalVolume.
func (d *disco) volume(name string, pvOf map[string]string) PhysicalVolume {
	b := d.devs[name]
	fi := d.fsOf(name)
	if pvOf[name] != "" {
		fi.Type = "LVM2_member"
	}
	pv := PhysicalVolume{Name: b.path(), Index: int32(b.Part), Size: b.Size, UsedSize: b.Size, FileSystem: fi.Type,
		UUID: fi.UUID, InodeSize: fi.InodeSize, Start: b.Start}
	if m, _, ok := d.mountOf(name); ok && fi.Type != "swap" {
		pv.MountPoint = m.MountPoint
	}
	if st, ok := d.usage(name); ok && fi.Type != "LVM2_member" && fi.Type != "swap" {
		pv.UsedSize = min(st.used(), b.Size)
		pv.InodeNums = st.Files
	}
	pv.DeviceUse = useOf(fi.Type, pv.MountPoint)
	return pv
}

// readTable reads a disk's partition table from its device file, when it
// can be opened; else udev's record of its type.
func (d *disco) readTable(b *blockDev) (*partTable, string) {
	if f, err := os.Open(d.e.path(b.path())); err == nil {
		t, err := readPartitionTable(f, b.Size, b.LBS)
		f.Close()
		if err == nil {
			return t, t.Style
		}
	}
	switch parseUdev(d.e.read("/run/udev/data/b" + b.Dev))["ID_PART_TABLE_TYPE"] {
	case "dos":
		return nil, "MBR"
	case "gpt":
		return nil, "GPT"
	}
	return nil, ""
}

// realDisk reports a disk of /sys/block.
func (d *disco) realDisk(b *blockDev, pvOf map[string]string) Disk {
	disk := Disk{Name: b.path(), Size: b.Size, SectorSize: b.LBS, PhysicalVolumes: []PhysicalVolume{}}
	t, style := d.readTable(b)
	disk.PartitionStyle, disk.HasPartitionTable = style, style != ""
	extended := map[int]bool{}
	if t != nil {
		for _, p := range t.Parts {
			extended[p.Number] = p.Extended
		}
	}
	parts := partitionsOf(d.devs, b.Name)
	for _, p := range parts {
		// The kernel lists an MBR extended partition as a 1 KiB device.
		if extended[p.Part] || (t == nil && p.Part <= 4 && p.Size <= 1024) {
			continue
		}
		pv := d.volume(p.Name, pvOf)
		disk.PhysicalVolumes = append(disk.PhysicalVolumes, pv)
		disk.UsedSize += pv.UsedSize
	}
	if len(parts) == 0 {
		disk.UsedSize = b.Size
		if pvOf[b.Name] != "" {
			disk.DeviceUse = "VOLUME_GROUP"
		} else if _, _, ok := d.mountOf(b.Name); ok {
			pv := d.volume(b.Name, pvOf)
			disk.PhysicalVolumes = append(disk.PhysicalVolumes, pv)
			disk.UsedSize = pv.UsedSize
		}
	}
	if disk.PartitionStyle == "" {
		disk.PartitionStyle = "MBR"
	}
	return disk
}

// ImageDisk reports a file standing in for a disk: its partition table and
// the file system (or LVM, swap) found at each partition's start. The local
// provider reads targets with it too, so a copy is checked the way its source
// was seen.
func ImageDisk(name, file string) (Disk, error) {
	f, err := os.Open(file)
	if err != nil {
		return Disk{}, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return Disk{}, err
	}
	disk := Disk{Name: name, Size: size, UsedSize: size, Image: file, SectorSize: 512, PhysicalVolumes: []PhysicalVolume{},
		PartitionStyle: "MBR"}
	t, err := readPartitionTable(f, size, 0)
	if errors.Is(err, errNoTable) || errors.Is(err, io.ErrUnexpectedEOF) {
		return disk, nil // a disk without a table (or too small for one)
	}
	if err != nil {
		return Disk{}, fmt.Errorf("read the partition table of %s: %w", file, err)
	}
	disk.PartitionStyle, disk.HasPartitionTable, disk.UsedSize = t.Style, true, 0
	for _, p := range t.Parts {
		if p.Extended {
			continue
		}
		pv := PhysicalVolume{Name: "/dev/" + partName(strings.TrimPrefix(name, "/dev/"), p.Number), Index: int32(p.Number),
			Size: p.Size, UsedSize: p.Size, UUID: p.UUID, Start: p.Start}
		if fi, ok := probeFS(io.NewSectionReader(f, p.Start, p.Size)); ok {
			pv.FileSystem, pv.InodeSize = fi.Type, fi.InodeSize
			if fi.UUID != "" {
				pv.UUID = fi.UUID
			}
		}
		pv.DeviceUse = useOf(pv.FileSystem, "")
		disk.PhysicalVolumes = append(disk.PhysicalVolumes, pv)
		disk.UsedSize += pv.UsedSize
	}
	return disk, nil
}

// lvmGroups reports the volume groups of the LVs in /sys/block/dm-*, and
// which devices are their physical volumes.
func (d *disco) lvmGroups() (vgs []VolumeGroup, pvOf map[string]string) {
	pvOf = map[string]string{}
	type group struct {
		vg  VolumeGroup
		pvs []string
	}
	groups := map[string]*group{}
	var order []string
	for _, n := range d.names {
		b := d.devs[n]
		if !isLV(b.DMUUID) {
			continue
		}
		vgName, lvName, ok := splitDMName(b.DMName)
		if !ok || lvName == "" {
			continue
		}
		g := groups[vgName]
		if g == nil {
			g = &group{vg: VolumeGroup{Name: vgName, LogicalVolumes: []LogicalVolume{}}}
			groups[vgName] = g
			order = append(order, vgName)
		}
		for _, pv := range d.physicalVolumes(n, b.DMUUID[4:36], map[string]bool{}) {
			if pvOf[pv] == "" {
				pvOf[pv] = vgName
				g.pvs = append(g.pvs, pv)
			}
		}
		g.vg.LogicalVolumes = append(g.vg.LogicalVolumes, d.logicalVolume(n))
	}
	sort.Strings(order)
	for _, name := range order {
		g := groups[name]
		var lvSize int64
		for _, lv := range g.vg.LogicalVolumes {
			lvSize += lv.Size
		}
		sort.Slice(g.vg.LogicalVolumes, func(i, j int) bool { return g.vg.LogicalVolumes[i].Name < g.vg.LogicalVolumes[j].Name })
		sort.Strings(g.pvs)
		var comps []string
		for _, pv := range g.pvs {
			comps = append(comps, d.devs[pv].path())
			g.vg.Size += d.devs[pv].Size
		}
		g.vg.Components = strings.Join(comps, ";")
		g.vg.FreeSize = max(g.vg.Size-lvSize, 0)
		vgs = append(vgs, g.vg)
	}
	return vgs, pvOf
}

// physicalVolumes are the devices under an LV that belong to no other
// device of its VG (thin pools and RAID images are looked through).
func (d *disco) physicalVolumes(name, vgUUID string, seen map[string]bool) []string {
	var out []string
	for _, s := range d.devs[name].Slaves {
		b := d.devs[s]
		if b == nil || seen[s] {
			continue
		}
		seen[s] = true
		if strings.HasPrefix(b.DMUUID, "LVM-"+vgUUID) {
			out = append(out, d.physicalVolumes(s, vgUUID, seen)...)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *disco) logicalVolume(name string) LogicalVolume {
	b := d.devs[name]
	fi := d.fsOf(name)
	lv := LogicalVolume{Name: b.path(), Size: b.Size, UsedSize: b.Size, FileSystem: fi.Type, InodeSize: fi.InodeSize}
	if m, _, ok := d.mountOf(name); ok && fi.Type != "swap" {
		lv.MountPoint = m.MountPoint
	}
	if st, ok := d.usage(name); ok && fi.Type != "swap" {
		lv.UsedSize = min(st.used(), b.Size)
		lv.InodeNums = st.Files
		if st.BlockSize <= 1<<20 {
			lv.BlockSize = st.BlockSize
			if st.Blocks <= 1<<31-1 {
				lv.BlockCount = int32(st.Blocks)
			}
		}
	}
	lv.FreeSize = lv.Size - lv.UsedSize
	lv.DeviceUse = useOf("", lv.MountPoint)
	return lv
}

// ioReadWait is the mean read latency (ms) of the disks since boot, from
// /proc/diskstats.
func ioReadWait(diskstats string, disks map[string]bool) (float64, bool) {
	var reads, ms float64
	for _, ln := range strings.Split(diskstats, "\n") {
		f := strings.Fields(ln)
		if len(f) < 7 || !disks[f[2]] {
			continue
		}
		r, e1 := strconv.ParseFloat(f[3], 64)
		t, e2 := strconv.ParseFloat(f[6], 64)
		if e1 != nil || e2 != nil {
			continue
		}
		reads += r
		ms += t
	}
	if reads == 0 {
		return 0, false
	}
	w := float64(int64(ms/reads*100+0.5)) / 100
	return min(w, 10000), true
}
