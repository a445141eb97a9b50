// Package discover finds what a Linux source server is made of, as the body
// of POST /v3/sources (spec §4.1.2): OS, kernel, firmware, CPUs, memory,
// disks with partitions and file systems, LVM volume groups, btrfs file
// systems, network interfaces, and the tools a migration needs.
//
// It reads files — /proc, /sys, /etc, /boot, /run/udev under Options.Root,
// and the first sectors of the devices in /dev when they can be opened
// (partition tables, superblocks) — and runs no commands. Only when Root is
// "/" does it ask the kernel directly: statfs(2) of mount points (used
// sizes, inode counts), the interfaces' addresses (net.Interfaces) and, when
// /proc/sys/kernel/arch is missing, uname(2). With another Root (a fixture
// tree) addresses come from /proc/net/fib_trie and used sizes are unknown
// (a partition's used size is then its size).
//
// Sizes are bytes. A partition's used_size is what its file system uses
// when it is mounted, else its whole size (swap, LVM physical volumes and
// unmounted file systems are copied whole); a disk's used_size is the sum of
// its partitions' (a disk without partitions: its size, or its mounted file
// system's usage). That is the amount a block copy moves.
package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/smsflow/smsflow/internal/sms"
)

// AgentVersionPrefix starts the agent_version smsflow's own agent reports:
// the server knows from it that the agent copies files itself (no rsync).
const AgentVersionPrefix = "smsflow-agent/"

// Options tells Discover where and what to look at.
type Options struct {
	// Root is the file system root to read /proc, /sys, /etc and /dev
	// from: "/" (the default) in production, a fixture tree in tests.
	Root string
	// Name is the operator-facing name; the host name by default.
	Name string
	// DiskImages maps a disk name ("/dev/vdb", or "vdb") to a file that
	// stands in for it: the disk is reported with the file's size and the
	// partitions of the file's MBR or GPT. A name the machine does not
	// have adds a disk.
	DiskImages map[string]string
	// OnlyImages reports the DiskImages disks alone, not the machine's
	// (nor its volume groups and btrfs). As nothing is mounted from them,
	// the first image (by name) is reported as the BOOT disk.
	OnlyImages bool
	// AgentVersion is reported as agent_version (AgentVersionPrefix and the
	// version, for smsflow's own agent).
	AgentVersion string

	// statfs replaces statfs(2) (tests of fixture trees).
	statfs func(mountPoint string) (fsStat, bool)
}

// Discover describes the machine. Every fact is best effort: a file that
// cannot be read leaves its fields at their defaults. It fails only when
// ctx ends, Root does not exist, or a disk image cannot be read.
func Discover(ctx context.Context, opts Options) (*Source, error) {
	e := newEnv(opts.Root, opts.statfs)
	if fi, err := os.Stat(e.root); err != nil {
		return nil, fmt.Errorf("discover: root: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("discover: root %s is not a directory", e.root)
	}
	s := &Source{OSType: sms.Linux, AgentVersion: opts.AgentVersion}

	s.Hostname = e.line("/proc/sys/kernel/hostname")
	if s.Hostname == "" {
		s.Hostname = e.line("/etc/hostname")
	}
	s.MachineID = e.line("/etc/machine-id")
	if s.MachineID == "" {
		s.MachineID = e.line("/var/lib/dbus/machine-id")
	}
	if len(s.MachineID) > 128 {
		s.MachineID = s.MachineID[:128]
	}

	s.KernelVersion = e.line("/proc/sys/kernel/osrelease")
	osi := readOS(e)
	arch := readArch(e, s.KernelVersion)
	typ := releaseType(osi.ID)
	s.OSVersion = osVersion(typ, osi.Version, arch)
	s.BlockCheck = BlockCheck{ReleaseType: typ, ReleaseVersion: releaseVersion(osi.Version),
		KernelSimplification: kernelSimplification(s.KernelVersion), Architecture: arch, KernelVersion: s.KernelVersion}
	bc, _ := json.Marshal(s.BlockCheck)
	s.LinuxBlockCheck = string(bc)

	s.Firmware = "BIOS"
	if e.exists("/sys/firmware/efi") {
		s.Firmware = "UEFI"
	}
	s.CPUQuantity = int32(min(cpuCount(e), 65535))
	s.Memory, _ = meminfo(e.read("/proc/meminfo"), "MemTotal")

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := discoverStorage(e, s, opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var primary string
	s.Networks, primary = networks(e)
	for _, n := range s.Networks {
		if n.Name == primary {
			s.IP, s.IPv6 = n.IP, n.IPv6
		}
	}

	d := readDMI(e)
	s.Platform = d.platform()
	s.VirtualizationType = virtualization(e, d, cpuFlags(e.read("/proc/cpuinfo")))
	s.Paravirtualization = paravirtualized(e, s.VirtualizationType)
	s.BootLoader = bootLoader(e)
	s.RawDevices = rawDevices(e)
	s.HasRsync = e.executable("rsync")
	s.HasTc = e.executable("tc")

	s.Name = opts.Name
	for _, n := range []string{s.Hostname, s.IP, "linux"} {
		if s.Name == "" {
			s.Name = n
		}
	}
	s.normalize()
	return s, ctx.Err()
}

// discoverStorage fills disks, volume groups, btrfs and io_read_wait.
func discoverStorage(e *env, s *Source, opts Options) error {
	d := newDisco(e)
	images := map[string]string{}
	for name, file := range opts.DiskImages {
		if !strings.HasPrefix(name, "/dev/") {
			name = "/dev/" + strings.TrimPrefix(name, "/")
		}
		images[name] = file
	}

	var pvOf map[string]string
	reported := map[string]bool{}
	if !opts.OnlyImages {
		s.VolumeGroups, pvOf = d.lvmGroups()
		s.BtrfsList = d.btrfsList()
		for _, n := range d.names {
			b := d.devs[n]
			if skippedDisk(n) || b.Size == 0 || images[b.path()] != "" {
				continue
			}
			s.Disks = append(s.Disks, d.realDisk(b, pvOf))
			reported[n] = true
		}
		if w, ok := ioReadWait(e.read("/proc/diskstats"), reported); ok {
			s.IOReadWait = &w
		}
	}
	for name, file := range images {
		disk, err := ImageDisk(name, file)
		if err != nil {
			return fmt.Errorf("discover: disk image for %s: %w", name, err)
		}
		s.Disks = append(s.Disks, disk)
	}
	sort.Slice(s.Disks, func(i, j int) bool { return s.Disks[i].Name < s.Disks[j].Name })

	// The disk that boots (holds /boot, or / when /boot is not apart) is
	// BOOT; another disk holding / is OS.
	var boot, root map[string]bool
	if !opts.OnlyImages {
		boot, root = d.disksUnder("/boot"), d.disksUnder("/")
		for k := range d.disksUnder("/boot/efi") {
			boot[k] = true
		}
	}
	if len(boot) == 0 {
		boot, root = root, nil
	}
	found := false
	for i := range s.Disks {
		disk := &s.Disks[i]
		switch {
		case boot[disk.Name]:
			disk.DeviceUse = "BOOT"
		case root[disk.Name]:
			disk.DeviceUse = "OS"
		case disk.DeviceUse == "":
			disk.DeviceUse = "NORMAL"
		}
		disk.OSDisk = disk.DeviceUse == "BOOT" || disk.DeviceUse == "OS"
		found = found || disk.OSDisk
	}
	// Images alone (a demo) have nothing mounted: the first one is taken
	// as the boot disk so that the source passes the boot-disk check.
	if !found && opts.OnlyImages && len(s.Disks) > 0 {
		s.Disks[0].DeviceUse, s.Disks[0].OSDisk = "BOOT", true
	}
	return nil
}
