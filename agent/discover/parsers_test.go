package discover

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
)

func TestParseOSRelease(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`ID=ubuntu`, map[string]string{"ID": "ubuntu"}},
		{"NAME=\"CentOS Linux\"\nVERSION_ID=\"7\"\n", map[string]string{"NAME": "CentOS Linux", "VERSION_ID": "7"}},
		{`PRETTY_NAME="say \"hi\" \\ \$x"`, map[string]string{"PRETTY_NAME": `say "hi" \ $x`}},
		{`ID='sles'`, map[string]string{"ID": "sles"}},
		{"# comment\n\n  ID=debian  \nbad line\n=x\nBAD-KEY=1\nVERSION_ID=12 # trailing", map[string]string{"ID": "debian", "VERSION_ID": "12"}},
		{`ID="unterminated`, map[string]string{"ID": "unterminated"}},
		{`ID='unterminated`, map[string]string{"ID": "unterminated"}},
		{`EMPTY=`, map[string]string{"EMPTY": ""}},
	} {
		assert.Equal(t, tc.want, parseOSRelease(tc.in), tc.in)
	}
}

func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
	return root
}

func TestReadOS(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
		arch      string
		osVersion string
		release   string
	}{
		{"centos 7.4 (spec example)", map[string]string{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"7\"\n",
			"etc/centos-release": "CentOS Linux release 7.4.1708 (Core)\n"}, "x86_64", "CENTOS_7_4_64BIT", "7.4"},
		{"centos 8.5 (spec example)", map[string]string{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"8\"\n",
			"etc/centos-release": "CentOS Linux release 8.5.2111\n"}, "x86_64", "CENTOS_8_5_64BIT", "8.5"},
		{"rhel 7.3 (spec example)", map[string]string{"etc/os-release": "ID=\"rhel\"\nVERSION_ID=\"7.3\"\n",
			"etc/redhat-release": "Red Hat Enterprise Linux Server release 7.3 (Maipo)\n"}, "x86_64", "REDHAT_7_3_64BIT", "7.3"},
		{"ubuntu 18.04 (spec example)", map[string]string{"etc/os-release": "ID=ubuntu\nVERSION_ID=\"18.04\"\n"},
			"x86_64", "UBUNTU_18_4_64BIT", "18.04"},
		{"sles 12 sp2 (spec example)", map[string]string{"etc/os-release": "ID=\"sles\"\nVERSION_ID=\"12.2\"\n"},
			"x86_64", "SUSE12_64BIT_SP2", "12.2"},
		{"sles 15 without a service pack", map[string]string{"etc/os-release": "ID=\"sles\"\nVERSION_ID=\"15\"\n"},
			"aarch64", "SUSE15_64BIT", "15"},
		{"centos 6 has no os-release", map[string]string{"etc/redhat-release": "CentOS release 6.10 (Final)\n"},
			"i686", "CENTOS_6_10_32BIT", "6.10"},
		{"sles 11 has SuSE-release", map[string]string{"etc/SuSE-release": "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n"},
			"x86_64", "SUSE11_64BIT_SP4", "11.4"},
		{"debian 12 refined by debian_version", map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n",
			"etc/debian_version": "12.5\n"}, "x86_64", "DEBIAN_12_5_64BIT", "12.5"},
		{"debian testing keeps its os-release", map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"13\"\n",
			"etc/debian_version": "trixie/sid\n"}, "x86_64", "DEBIAN_13_64BIT", "13"},
		{"a release file of another major is ignored", map[string]string{"etc/os-release": "ID=centos\nVERSION_ID=9\n",
			"etc/centos-release": "CentOS Stream release 8.1\n"}, "x86_64", "CENTOS_9_64BIT", "9"},
		{"openEuler in /usr/lib", map[string]string{"usr/lib/os-release": "ID=\"openEuler\"\nVERSION_ID=\"22.03\"\n"},
			"aarch64", "OPENEULER_22_3_64BIT", "22.03"},
		{"an unknown distribution", map[string]string{"etc/os-release": "ID=my-linux\nVERSION_ID=2024.1\n"},
			"x86_64", "MYLINUX_2024_1_64BIT", "2024.1"},
		{"rolling release", map[string]string{"etc/os-release": "ID=arch\n"}, "x86_64", "ARCH_64BIT", ""},
		{"nothing", map[string]string{}, "x86_64", "LINUX_64BIT", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := readOS(newEnv(tree(t, tc.files), nil))
			assert.Equal(t, tc.osVersion, osVersion(releaseType(info.ID), info.Version, tc.arch))
			assert.Equal(t, tc.release, releaseVersion(info.Version))
		})
	}
}

func TestReadArch(t *testing.T) {
	e := newEnv(tree(t, map[string]string{"proc/sys/kernel/arch": "aarch64\n"}), nil)
	assert.Equal(t, "aarch64", readArch(e, "5.10.0-1.el8.x86_64"))
	e = newEnv(tree(t, nil), nil)
	assert.Equal(t, "x86_64", readArch(e, "3.10.0-1160.el7.x86_64"))
	assert.Equal(t, "ppc64le", readArch(e, "4.18.0-80.el8.ppc64le"))
	assert.Equal(t, goArchs["amd64"], "x86_64")
}

func TestKernelSimplification(t *testing.T) {
	for in, want := range map[string]string{"3.10.0-1160.el7.x86_64": "3.10.0", "5.15.0-91-generic": "5.15.0",
		"4.4.21-69-default": "4.4.21", "6.1": "6.1", "": "", "x5.1": ""} {
		assert.Equal(t, want, kernelSimplification(in), in)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3\n": 4, "0-3,5,7-8": 7, "": 0, "a": 0, "3-1": 0, "0-": 0, "0,,2": 2} {
		assert.Equal(t, want, parseCPUList(in), in)
	}
}

func TestMeminfo(t *testing.T) {
	data := "MemTotal:        3880292 kB\nMemAvailable:    3318440 kB\nHugePages_Total:       4\nBad: x kB\n"
	n, ok := meminfo(data, "MemTotal")
	assert.True(t, ok)
	assert.Equal(t, int64(3880292*1024), n)
	n, ok = meminfo(data, "HugePages_Total")
	assert.True(t, ok)
	assert.Equal(t, int64(4), n)
	_, ok = meminfo(data, "Bad")
	assert.False(t, ok)
	_, ok = meminfo(data, "Mem")
	assert.False(t, ok)
}

func TestSplitDMName(t *testing.T) {
	for _, tc := range []struct {
		in, vg, lv string
		ok         bool
	}{
		{"ubuntu--vg-ubuntu--lv", "ubuntu-vg", "ubuntu-lv", true},
		{"vg0-root", "vg0", "root", true},
		{"my--vg-lv--a--b", "my-vg", "lv-a-b", true},
		{"centos-swap", "centos", "swap", true},
		{"nohyphen", "", "", false},
		{"-x", "", "x", false},
		{"vg-", "vg", "", false},
		{"a---b", "a-", "b", true},
	} {
		vg, lv, ok := splitDMName(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		if tc.ok {
			assert.Equal(t, [2]string{tc.vg, tc.lv}, [2]string{vg, lv}, tc.in)
		}
	}
	assert.True(t, isLV("LVM-"+string(bytes.Repeat([]byte("a"), 64))))
	assert.False(t, isLV("LVM-"+string(bytes.Repeat([]byte("a"), 64))+"-tpool"))
	assert.False(t, isLV("CRYPT-LUKS2-0123"))
}

func TestMountOptsSwapsUdev(t *testing.T) {
	v, ok := opt("rw,subvolid=257,subvol=/@home", "subvol")
	assert.True(t, ok)
	assert.Equal(t, "/@home", v)
	_, ok = opt("rw", "subvol")
	assert.False(t, ok)

	assert.Equal(t, []string{"/dev/dm-1", "/dev/vdc1"},
		parseSwaps("Filename Type Size Used Priority\n/dev/dm-1 partition 4 0 -2\n/swapfile file 4 0 -3\n/dev/vdc1 partition 1 0 -4\n"))
	assert.Equal(t, map[string]string{"ID_FS_TYPE": "ext4", "ID_FS_UUID": "x=y"},
		parseUdev("S:disk/by-uuid/x\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=x=y\nE:broken\nI:123\n"))
}

func TestParseRoutes(t *testing.T) {
	data := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth1	00000000	FE01A8C0	0003	0	0	200	00000000	0	0	0
eth0	00000000	0100A8C0	0003	0	0	100	00000000	0	0	0
eth0	0000A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
eth1	0001A8C0	00000000	0001	0	0	200	00FFFFFF	0	0	0
eth0	00000000	0200A8C0	0003	0	0	300	00000000	0	0	0
bad	zz	00000000	0001	0	0	0	00000000	0	0	0
short	00000000
`
	rs := parseRoutes(data)
	require.Len(t, rs, 5)
	assert.Equal(t, route{Iface: "eth1", Dest: net.IPv4(0, 0, 0, 0).To4(), Gateway: net.IPv4(192, 168, 1, 254).To4(),
		Mask: net.IPMask{0, 0, 0, 0}, Flags: 3, Metric: 200}, rs[0])
	assert.Equal(t, "255.255.255.0", net.IP(rs[2].Mask).String())
	gw, order := defaultGateways(rs)
	assert.Equal(t, map[string]string{"eth0": "192.168.0.1", "eth1": "192.168.1.254"}, gw)
	assert.Equal(t, []string{"eth0", "eth1"}, order)

	e := newEnv(tree(t, map[string]string{"proc/net/fib_trie": `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 192.168.0.7
        /32 host LOCAL
     |-- 192.168.1.9
        /32 host LOCAL
     |-- 10.9.9.9
        /32 host LOCAL
Local:
     |-- 192.168.0.7
        /32 host LOCAL
`}), nil)
	assert.Equal(t, map[string]addrOf{"eth0": {IP: "192.168.0.7", Netmask: "255.255.255.0"}, "eth1": {IP: "192.168.1.9", Netmask: "255.255.255.0"}},
		fileAddrs(e, rs))
}

func TestIOReadWait(t *testing.T) {
	data := " 253 0 vda 1000 0 8 2500 0 0 0 0 0 0 0\n 253 1 vda1 10 0 8 99999 0 0 0\n 8 0 sda 3 0 0 1\n bad line\n"
	w, ok := ioReadWait(data, map[string]bool{"vda": true, "sda": true})
	assert.True(t, ok)
	assert.Equal(t, 2.49, w) // (2500+1) ms / (1000+3) reads
	_, ok = ioReadWait(data, map[string]bool{"vdb": true})
	assert.False(t, ok)
}

func TestPlatform(t *testing.T) {
	for _, tc := range []struct {
		d    dmi
		want string
		vm   bool
	}{
		{dmi{SysVendor: "OpenStack Foundation", ProductName: "OpenStack Nova", ChassisAssetTag: "HUAWEICLOUD"}, "hw", true},
		{dmi{SysVendor: "Alibaba Cloud", ProductName: "Alibaba Cloud ECS"}, "ali", true},
		{dmi{SysVendor: "Xen", ProductName: "HVM domU", ProductVersion: "4.11.amazon", BIOSVendor: "Xen"}, "aws", true},
		{dmi{SysVendor: "Amazon EC2", ProductName: "m5.large"}, "aws", true},
		{dmi{SysVendor: "Microsoft Corporation", ProductName: "Virtual Machine", ChassisAssetTag: azureAssetTag}, "azure", true},
		{dmi{SysVendor: "Microsoft Corporation", ProductName: "Virtual Machine"}, "hyperv", true},
		{dmi{SysVendor: "Google", ProductName: "Google Compute Engine"}, "gcp", true},
		{dmi{SysVendor: "Tencent Cloud", ProductName: "CVM"}, "tencent", true},
		{dmi{SysVendor: "VMware, Inc.", ProductName: "VMware Virtual Platform"}, "vmware", true},
		{dmi{SysVendor: "QEMU", ProductName: "Standard PC (i440FX + PIIX, 1996)"}, "other", true},
		{dmi{SysVendor: "Dell Inc.", ProductName: "PowerEdge R740"}, "other", false},
		{dmi{}, "other", false},
	} {
		assert.Equal(t, tc.want, tc.d.platform(), "%+v", tc.d)
		assert.Equal(t, tc.vm, tc.d.virtualMachine(), "%+v", tc.d)
	}
}

func TestVirtualization(t *testing.T) {
	bare := newEnv(tree(t, nil), nil)
	assert.Equal(t, "", virtualization(bare, dmi{SysVendor: "Dell Inc."}, map[string]bool{"sse": true}))
	assert.Equal(t, "HVM", virtualization(bare, dmi{}, map[string]bool{"hypervisor": true}))
	assert.False(t, paravirtualized(bare, ""))
	xenPV := newEnv(tree(t, map[string]string{"sys/hypervisor/type": "xen\n", "sys/hypervisor/guest_type": "PV\n",
		"sys/bus/xen/devices/vbd-51712": ""}), nil)
	assert.Equal(t, "PV", virtualization(xenPV, dmi{}, nil))
	assert.True(t, paravirtualized(xenPV, "PV"))
	assert.Equal(t, map[string]bool{"fpu": true, "hypervisor": true}, cpuFlags("processor: 0\nflags\t: fpu hypervisor\n\nflags: other\n"))
	assert.Equal(t, map[string]bool{"fp": true, "asimd": true}, cpuFlags("processor: 0\nFeatures\t: fp asimd\n"))
}

func TestBootLoader(t *testing.T) {
	for _, tc := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"boot/grub2/grub.cfg": ""}, "GRUB"},
		{map[string]string{"boot/grub/menu.lst": ""}, "GRUB"},
		{map[string]string{"boot/efi/EFI/centos/grubx64.efi": ""}, "GRUB"},
		{map[string]string{"etc/lilo.conf": ""}, "LILO"},
		{map[string]string{"boot/vmlinuz": ""}, ""},
	} {
		assert.Equal(t, tc.want, bootLoader(newEnv(tree(t, tc.files), nil)), "%v", tc.files)
	}
}

// A 512-byte MBR with an extended partition holding two logical ones.
func extendedMBR() []byte {
	disk := make([]byte, 4096*512)
	copy(disk, diskimage.MBR([]diskimage.Part{
		{Type: 0x83, Status: 0x80, LBA: 2048, Sectors: 1024},
		{Type: 0x05, LBA: 3072, Sectors: 1024},
	}))
	// EBR 1 at 3072: logical 5 at +63, next EBR at base+512
	copy(disk[3072*512:], diskimage.MBR([]diskimage.Part{{Type: 0x83, LBA: 63, Sectors: 400}, {Type: 0x05, LBA: 512, Sectors: 512}}))
	// EBR 2 at 3584: logical 6 at +63, end of chain
	copy(disk[3584*512:], diskimage.MBR([]diskimage.Part{{Type: 0x82, LBA: 63, Sectors: 300}}))
	return disk
}

func TestReadPartitionTable(t *testing.T) {
	t.Run("MBR with logical partitions", func(t *testing.T) {
		disk := extendedMBR()
		pt, err := readPartitionTable(bytes.NewReader(disk), int64(len(disk)), 512)
		require.NoError(t, err)
		assert.Equal(t, &partTable{Style: "MBR", Parts: []partEntry{
			{Number: 1, Start: 2048 * 512, Size: 1024 * 512, Type: "0x83", Bootable: true},
			{Number: 2, Start: 3072 * 512, Size: 1024 * 512, Type: "0x05", Extended: true},
			{Number: 5, Start: (3072 + 63) * 512, Size: 400 * 512, Type: "0x83"},
			{Number: 6, Start: (3584 + 63) * 512, Size: 300 * 512, Type: "0x82"},
		}}, pt)
	})
	t.Run("an EBR chain that loops ends", func(t *testing.T) {
		disk := extendedMBR()
		// EBR 2 names itself as the next EBR.
		copy(disk[3584*512:], diskimage.MBR([]diskimage.Part{{Type: 0x82, LBA: 63, Sectors: 300}, {Type: 0x05, LBA: 512, Sectors: 1}}))
		pt, err := readPartitionTable(bytes.NewReader(disk), int64(len(disk)), 512)
		require.NoError(t, err)
		assert.Len(t, pt.Parts, 4)
	})
	t.Run("an empty MBR is a table", func(t *testing.T) {
		pt, err := readPartitionTable(bytes.NewReader(diskimage.MBR(nil)), 512, 512)
		require.NoError(t, err)
		assert.Equal(t, &partTable{Style: "MBR"}, pt)
	})
	t.Run("a FAT boot sector is not a table", func(t *testing.T) {
		vbr := diskimage.MBR(nil)
		copy(vbr[446:], []byte{0xfa, 0x31, 0xc0, 0x8e, 0xd8}) // boot code
		_, err := readPartitionTable(bytes.NewReader(vbr), 512, 512)
		assert.ErrorIs(t, err, errNoTable)
	})
	t.Run("a partition past the end is not a table", func(t *testing.T) {
		_, err := readPartitionTable(bytes.NewReader(diskimage.MBR([]diskimage.Part{{Type: 0x83, LBA: 4096, Sectors: 8}})), 1<<20, 512)
		assert.ErrorIs(t, err, errNoTable)
	})
	t.Run("zeros", func(t *testing.T) {
		_, err := readPartitionTable(bytes.NewReader(make([]byte, 8192)), 8192, 0)
		assert.ErrorIs(t, err, errNoTable)
		_, err = readPartitionTable(bytes.NewReader(nil), 0, 0)
		assert.Error(t, err)
	})
	t.Run("the fuzz seeds", func(t *testing.T) {
		pt, err := readPartitionTable(bytes.NewReader(gptSeed()[:1536]), 64*512, 0)
		require.NoError(t, err)
		assert.Equal(t, "GPT", pt.Style)
		assert.Equal(t, []partEntry{{Number: 1, Start: 34 * 512, Size: 27 * 512, Type: diskimage.LinuxFS, UUID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}}, pt.Parts)
		pt, err = readPartitionTable(bytes.NewReader(smallExtended()), 16*512, 512)
		require.NoError(t, err)
		var nums []int
		for _, p := range pt.Parts {
			nums = append(nums, p.Number)
		}
		assert.Equal(t, []int{1, 2, 5, 6}, nums)
	})
	t.Run("GPT, and a broken GPT behind a protective MBR", func(t *testing.T) {
		f, _ := diskimage.New(t, 4*MiB)
		diskimage.WriteGPT(t, f, 4*MiB, []diskimage.Part{{LBA: 2048, Sectors: 4096, GPTType: diskimage.LinuxFS, Name: "data ü"}},
			[]string{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"})
		pt, err := readPartitionTable(f, 4*MiB, 0)
		require.NoError(t, err)
		assert.Equal(t, &partTable{Style: "GPT", DiskGUID: "11111111-2222-3333-4444-555555555555", Parts: []partEntry{
			{Number: 1, Start: MiB, Size: 2 * MiB, Type: diskimage.LinuxFS, UUID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", Name: "data ü"},
		}}, pt)
		diskimage.WriteAt(t, f, 1024+32, []byte{9}) // an entry changes: its CRC no longer matches
		pt, err = readPartitionTable(f, 4*MiB, 0)
		require.NoError(t, err)
		assert.Equal(t, &partTable{Style: "GPT"}, pt)
	})
}

func TestProbeFS(t *testing.T) {
	img := func(off int, b []byte) *bytes.Reader {
		d := make([]byte, 128<<10)
		copy(d[off:], b)
		return bytes.NewReader(d)
	}
	id := []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	const idStr = "12345678-9abc-def0-0123-456789abcdef"

	ext3 := diskimage.ExtSuperblock(id, "root")
	binary.LittleEndian.PutUint32(ext3[96:], 0x2) // filetype only
	ext2 := diskimage.ExtSuperblock(id, "")
	binary.LittleEndian.PutUint32(ext2[92:], 0)
	binary.LittleEndian.PutUint32(ext2[96:], 0)
	binary.LittleEndian.PutUint32(ext2[76:], 0) // revision 0: 128-byte inodes

	xfs := make([]byte, 120)
	copy(xfs, "XFSB")
	copy(xfs[32:], id)
	binary.BigEndian.PutUint16(xfs[104:], 512)
	copy(xfs[108:], "data")

	btrfs := make([]byte, 0x12b+256)
	copy(btrfs[32:], id)
	copy(btrfs[64:], "_BHRfS_M")
	copy(btrfs[0x12b:], "pool")

	swap := make([]byte, 4096)
	copy(swap[1024+12:], id)
	copy(swap[1024+28:], "swap1")
	copy(swap[4086:], "SWAPSPACE2")

	fat32 := diskimage.MBR(nil)
	copy(fat32[82:], "FAT32   ")
	binary.LittleEndian.PutUint32(fat32[67:], 0x1a2b3c4d)
	copy(fat32[71:], "EFI        ")
	fat16 := diskimage.MBR(nil)
	copy(fat16[54:], "FAT16   ")
	binary.LittleEndian.PutUint32(fat16[39:], 0xdeadbeef)
	copy(fat16[43:], "NO NAME    ")

	ntfs := make([]byte, 512)
	copy(ntfs[3:], "NTFS    ")
	binary.LittleEndian.PutUint64(ntfs[72:], 0x0123456789abcdef)

	for _, tc := range []struct {
		name string
		r    *bytes.Reader
		want fsInfo
		ok   bool
	}{
		{"ext4", img(1024, diskimage.ExtSuperblock(id, "boot")), fsInfo{Type: "ext4", UUID: idStr, Label: "boot", InodeSize: 256}, true},
		{"ext3", img(1024, ext3), fsInfo{Type: "ext3", UUID: idStr, Label: "root", InodeSize: 256}, true},
		{"ext2", img(1024, ext2), fsInfo{Type: "ext2", UUID: idStr, InodeSize: 128}, true},
		{"xfs", img(0, xfs), fsInfo{Type: "xfs", UUID: idStr, Label: "data", InodeSize: 512}, true},
		{"btrfs", img(0x10000, btrfs), fsInfo{Type: "btrfs", UUID: idStr, Label: "pool"}, true},
		{"swap", img(0, swap), fsInfo{Type: "swap", UUID: idStr, Label: "swap1"}, true},
		{"lvm", img(512, diskimage.LVMLabel()), fsInfo{Type: "LVM2_member", UUID: "abcdef-ghij-klmn-opqr-stuv-wxyz-012345"}, true},
		{"vfat32", img(0, fat32), fsInfo{Type: "vfat", UUID: "1A2B-3C4D", Label: "EFI"}, true},
		{"vfat16", img(0, fat16), fsInfo{Type: "vfat", UUID: "DEAD-BEEF", Label: "NO NAME"}, true},
		{"ntfs", img(0, ntfs), fsInfo{Type: "ntfs", UUID: "0123456789ABCDEF"}, true},
		{"nothing", img(0, nil), fsInfo{}, false},
		{"too short", bytes.NewReader([]byte("XFS")), fsInfo{}, false},
	} {
		got, ok := probeFS(tc.r)
		assert.Equal(t, tc.ok, ok, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func TestLooksLikeUUID(t *testing.T) {
	assert.True(t, looksLikeUUID(btrfsUUID))
	assert.False(t, looksLikeUUID("features"))
	assert.False(t, looksLikeUUID("5e4a0c6d-2b1f-4c3e-8d7a-9b0c1d2e3f4g"))
	assert.False(t, looksLikeUUID("5e4a0c6d-2b1f-4c3e-8d7a+9b0c1d2e3f4a"))
}

func TestPartName(t *testing.T) {
	assert.Equal(t, "vda1", partName("vda", 1))
	assert.Equal(t, "nvme0n1p2", partName("nvme0n1", 2))
	assert.Equal(t, "mmcblk0p3", partName("mmcblk0", 3))
	assert.Equal(t, "/dev/cciss/c0d0", (&blockDev{Name: "cciss!c0d0"}).path())
	assert.Equal(t, "/dev/mapper/vg-lv", (&blockDev{Name: "dm-0", DMName: "vg-lv"}).path())
}
