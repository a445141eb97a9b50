package discover

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeStatfs answers statfs for the mount points of a fixture tree.
func fakeStatfs(m map[string]fsStat) func(string) (fsStat, bool) {
	return func(mp string) (fsStat, bool) {
		st, ok := m[mp]
		return st, ok
	}
}

const (
	GiB = int64(1) << 30
	MiB = int64(1) << 20
)

func centos79() *Source {
	return &Source{
		IP: "192.168.0.10", Name: "centos7-vm", Hostname: "centos7-vm", OSType: "LINUX",
		OSVersion: "CENTOS_7_9_64BIT", VirtualizationType: "HVM",
		LinuxBlockCheck: `{"release_type":"CENTOS","release_version":"7.9","kernel_simplification":"3.10.0","architecture":"x86_64","kernel_version":"3.10.0-1160.el7.x86_64"}`,
		BlockCheck: BlockCheck{ReleaseType: "CENTOS", ReleaseVersion: "7.9", KernelSimplification: "3.10.0",
			Architecture: "x86_64", KernelVersion: "3.10.0-1160.el7.x86_64"},
		Firmware: "BIOS", CPUQuantity: 4, Memory: 3880292 * 1024,
		Disks: []Disk{
			{Name: "/dev/vda", PartitionStyle: "MBR", DeviceUse: "BOOT", Size: 40 * GiB, UsedSize: 252444672 + 4990959616,
				OSDisk: true, HasPartitionTable: true, SectorSize: 512, PhysicalVolumes: []PhysicalVolume{
					{DeviceUse: "BOOT", FileSystem: "xfs", Index: 1, MountPoint: "/boot", Name: "/dev/vda1", Size: GiB,
						UsedSize: 252444672, InodeNums: 524288, Start: MiB},
					{DeviceUse: "OS", FileSystem: "xfs", Index: 2, MountPoint: "/", Name: "/dev/vda2", Size: 40*GiB - GiB - MiB,
						UsedSize: 4990959616, InodeNums: 20444672, Start: GiB + MiB},
				}},
			{Name: "/dev/vdb", PartitionStyle: "MBR", DeviceUse: "NORMAL", Size: 10 * GiB, UsedSize: 328916992, SectorSize: 512,
				PhysicalVolumes: []PhysicalVolume{
					{DeviceUse: "NORMAL", FileSystem: "ext4", Index: 0, MountPoint: "/data", Name: "/dev/vdb", Size: 10 * GiB,
						UsedSize: 328916992, InodeNums: 655360},
				}},
			{Name: "/dev/vdc", PartitionStyle: "MBR", DeviceUse: "NORMAL", Size: 20 * GiB, UsedSize: 20*GiB - MiB,
				HasPartitionTable: true, SectorSize: 512, PhysicalVolumes: []PhysicalVolume{
					{DeviceUse: "NORMAL", FileSystem: "swap", Index: 1, Name: "/dev/vdc1", Size: 20*GiB - MiB, UsedSize: 20*GiB - MiB,
						UUID: "5f1c0c2e-8a3b-4c55-9d0e-2a7b1c3d4e5f", Start: MiB},
				}},
		},
		BtrfsList: []Btrfs{},
		Networks: []Network{
			{Name: "eth0", IP: "192.168.0.10", Netmask: "255.255.255.0", Gateway: "192.168.0.1", MTU: 1500, MAC: "fa:16:3e:12:34:56"},
		},
		HasRsync: true, Paravirtualization: true, RawDevices: "", BootLoader: "GRUB", VolumeGroups: []VolumeGroup{},
		AgentVersion: "1.2.3", KernelVersion: "3.10.0-1160.el7.x86_64", IOReadWait: new(1.5), HasTc: false,
		Platform: "hw", MachineID: "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
	}
}

var centos79Statfs = map[string]fsStat{
	"/":     {BlockSize: 4096, Blocks: 10218496, FreeBlocks: 9000000, Files: 20444672, FreeFiles: 20400000},
	"/boot": {BlockSize: 4096, Blocks: 261632, FreeBlocks: 200000, Files: 524288, FreeFiles: 524000},
	"/data": {BlockSize: 4096, Blocks: 2580302, FreeBlocks: 2500000, Files: 655360, FreeFiles: 655000},
}

const btrfsUUID = "5e4a0c6d-2b1f-4c3e-8d7a-9b0c1d2e3f4a"

func ubuntu2204() *Source {
	p3 := int64(203315200) * 512
	return &Source{
		IP: "172.31.5.10", Name: "web-01", Hostname: "ubuntu-efi", OSType: "LINUX",
		OSVersion: "UBUNTU_22_4_64BIT", VirtualizationType: "HVM",
		LinuxBlockCheck: `{"release_type":"UBUNTU","release_version":"22.04","kernel_simplification":"5.15.0","architecture":"x86_64","kernel_version":"5.15.0-91-generic"}`,
		BlockCheck: BlockCheck{ReleaseType: "UBUNTU", ReleaseVersion: "22.04", KernelSimplification: "5.15.0",
			Architecture: "x86_64", KernelVersion: "5.15.0-91-generic"},
		Firmware: "UEFI", CPUQuantity: 8, Memory: 16365236 * 1024,
		Disks: []Disk{
			{Name: "/dev/nvme0n1", PartitionStyle: "GPT", DeviceUse: "BOOT", Size: 100 * GiB,
				UsedSize: 6955008 + 405094400 + p3, OSDisk: true, HasPartitionTable: true, SectorSize: 512,
				PhysicalVolumes: []PhysicalVolume{
					{DeviceUse: "BOOT", FileSystem: "vfat", Index: 1, MountPoint: "/boot/efi", Name: "/dev/nvme0n1p1",
						Size: 2201600 * 512, UsedSize: 6955008, UUID: "1A2B-3C4D", Start: MiB},
					{DeviceUse: "BOOT", FileSystem: "ext4", Index: 2, MountPoint: "/boot", Name: "/dev/nvme0n1p2",
						Size: 2 * GiB, UsedSize: 405094400, InodeNums: 131072, UUID: "0d6f0a52-7b1e-4e2a-a4b8-3f6c2d1e0f9a",
						Start: 2203648 * 512},
					{DeviceUse: "VOLUME_GROUP", FileSystem: "LVM2_member", Index: 3, Name: "/dev/nvme0n1p3", Size: p3,
						UsedSize: p3, UUID: "Q1w2E3-r4T5-y6U7-i8O9-p0A1-s2D3-f4G5h6", Start: 6397952 * 512},
				}},
			{Name: "/dev/nvme1n1", PartitionStyle: "MBR", DeviceUse: "NORMAL", Size: 50 * GiB, UsedSize: 4535091200,
				SectorSize: 512, PhysicalVolumes: []PhysicalVolume{
					{DeviceUse: "BTRFS", FileSystem: "btrfs", Index: 0, MountPoint: "/srv", Name: "/dev/nvme1n1", Size: 50 * GiB,
						UsedSize: 4535091200, UUID: btrfsUUID},
				}},
		},
		BtrfsList: []Btrfs{{
			Name: "/dev/nvme1n1", Label: "srvdata", UUID: btrfsUUID, Device: "/dev/nvme1n1",
			Size: 4294967296 + 104857600 + 16384, Nodesize: 16384, Sectorsize: 4096,
			DataProfile: "single", SystemProfile: "dup", MetadataProfile: "dup", GlobalReserve1: "single",
			GVolUsedSize: 5368709120 + 1073741824 + 16777216, DefaultSubvolID: "5", DefaultSubvolIDSpec: "5",
			DefaultSubvolName: "<FS_TREE>", DefaultSubvolMountpath: "/srv",
			Subvolumn: []BtrfsSubvol{
				{UUID: btrfsUUID, IsSnapshot: "false", SubvolID: "256", ParentID: "5", SubvolName: "@data", SubvolMountPath: "/srv/data"},
				{UUID: btrfsUUID, IsSnapshot: "true", SubvolID: "258", ParentID: "256", SubvolName: "@data/.snapshots/1/snapshot",
					SubvolMountPath: "/srv/snap"},
			},
		}},
		Networks: []Network{
			{Name: "docker0", IP: "172.17.0.1", Netmask: "255.255.0.0", MTU: 1500, MAC: "02:42:ac:11:00:01"},
			{Name: "ens5", IP: "172.31.5.10", Netmask: "255.255.240.0", Gateway: "172.31.0.1", MTU: 9001, MAC: "0a:1b:2c:3d:4e:5f"},
		},
		HasRsync: true, Paravirtualization: false, RawDevices: "/dev/raw/raw1", BootLoader: "GRUB",
		VolumeGroups: []VolumeGroup{{
			Name: "ubuntu-vg", Components: "/dev/nvme0n1p3", Size: p3, FreeSize: p3 - 50*GiB - 4*GiB,
			LogicalVolumes: []LogicalVolume{
				{FileSystem: "swap", DeviceUse: "NORMAL", Name: "/dev/mapper/ubuntu--vg-swap_1", Size: 4 * GiB, UsedSize: 4 * GiB},
				{BlockCount: 12868736, BlockSize: 4096, FileSystem: "ext4", InodeNums: 3276800, DeviceUse: "OS", MountPoint: "/",
					Name: "/dev/mapper/ubuntu--vg-ubuntu--lv", Size: 50 * GiB, UsedSize: 11750342656, FreeSize: 50*GiB - 11750342656},
			},
		}},
		KernelVersion: "5.15.0-91-generic", HasTc: true, Platform: "aws", MachineID: "ec2a1f3b9c8d4e7f8a6b5c4d3e2f1a0b",
	}
}

var ubuntu2204Statfs = map[string]fsStat{
	"/":         {BlockSize: 4096, Blocks: 12868736, FreeBlocks: 10000000, Files: 3276800, FreeFiles: 3000000},
	"/boot":     {BlockSize: 4096, Blocks: 498900, FreeBlocks: 400000, Files: 131072, FreeFiles: 131000},
	"/boot/efi": {BlockSize: 512, Blocks: 2201584, FreeBlocks: 2188000},
	"/srv":      {BlockSize: 4096, Blocks: 13107200, FreeBlocks: 12000000},
}

func TestDiscoverFixtures(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want *Source
	}{
		{"centos 7.9 BIOS, MBR vda + whole-disk ext4 vdb + swap on vdc",
			Options{Root: "testdata/centos79", AgentVersion: "1.2.3", statfs: fakeStatfs(centos79Statfs)}, centos79()},
		{"ubuntu 22.04 UEFI, GPT nvme with LVM + whole-disk btrfs",
			Options{Root: "testdata/ubuntu2204", Name: "web-01", statfs: fakeStatfs(ubuntu2204Statfs)}, ubuntu2204()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Discover(context.Background(), tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			body, err := json.Marshal(got)
			require.NoError(t, err)
			checkRegisterBody(t, body)
		})
	}
}

// Without statfs (a fixture tree and no hook) used sizes are the sizes.
func TestDiscoverFixtureWithoutStatfs(t *testing.T) {
	got, err := Discover(context.Background(), Options{Root: "testdata/centos79"})
	require.NoError(t, err)
	for _, d := range got.Disks {
		var sum int64
		for _, p := range d.PhysicalVolumes {
			assert.Equal(t, p.Size, p.UsedSize, p.Name)
			assert.Zero(t, p.InodeNums, p.Name)
			sum += p.UsedSize
		}
		assert.Equal(t, sum, d.UsedSize, d.Name)
	}
}

func TestDiscoverErrors(t *testing.T) {
	_, err := Discover(context.Background(), Options{Root: "testdata/no-such-root"})
	assert.Error(t, err)
	_, err = Discover(context.Background(), Options{Root: "testdata/centos79/etc/os-release"})
	assert.Error(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Discover(ctx, Options{Root: "testdata/centos79"})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = Discover(context.Background(), Options{Root: "testdata/centos79", DiskImages: map[string]string{"/dev/vdz": "testdata/no-such-image"}})
	assert.Error(t, err)
}
