package local

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/testkit/diskimage"
)

const mib = 1 << 20

// image writes an 8 MiB disk image with an MBR or GPT table of partitions
// (LBA, sectors) and the file systems named in fs at their starts: "ext4",
// "swap" or "" (nothing written).
func image(t *testing.T, style string, parts [][2]uint32, fs []string) string {
	t.Helper()
	f, path := diskimage.New(t, 8*mib)
	var ps []diskimage.Part
	var uuids []string
	for _, p := range parts {
		ps = append(ps, diskimage.Part{Type: 0x83, LBA: p[0], Sectors: p[1], GPTType: diskimage.LinuxFS})
		uuids = append(uuids, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
	}
	switch style {
	case "MBR":
		diskimage.WriteAt(t, f, 0, diskimage.MBR(ps))
	case "GPT":
		diskimage.WriteGPT(t, f, 8*mib, ps, uuids)
	}
	for i, name := range fs {
		writeFS(t, f, int64(parts[i][0])*512, name)
	}
	return path
}

func writeFS(t *testing.T, f interface {
	WriteAt([]byte, int64) (int, error)
}, start int64, name string) {
	t.Helper()
	var err error
	switch name {
	case "ext4":
		_, err = f.WriteAt(diskimage.ExtSuperblock(make([]byte, 16), "root"), start+1024)
	case "swap":
		_, err = f.WriteAt([]byte("SWAPSPACE2"), start+4096-10)
	}
	require.NoError(t, err)
}

func TestCheckDisk(t *testing.T) {
	ext4swap := []provider.Partition{{Index: 1, FileSystem: "ext4"}, {Index: 2, FileSystem: "swap"}}
	two := [][2]uint32{{2048, 4096}, {8192, 4096}}

	// An MBR whose extended partition holds logical partition 5 (ext4).
	logical := func(t *testing.T) string {
		f, path := diskimage.New(t, 8*mib)
		diskimage.WriteAt(t, f, 0, diskimage.MBR([]diskimage.Part{{Type: 0x83, LBA: 2048, Sectors: 4096}, {Type: 0x05, LBA: 8192, Sectors: 8192}}))
		diskimage.WriteAt(t, f, 8192*512, diskimage.MBR([]diskimage.Part{{Type: 0x83, LBA: 2048, Sectors: 4096}}))
		writeFS(t, f, 2048*512, "ext4")
		writeFS(t, f, (8192+2048)*512, "ext4")
		return path
	}
	cases := []struct {
		name  string
		path  func(t *testing.T) string
		want  provider.Disk
		fails string
	}{
		{"MBR with ext4 and swap", func(t *testing.T) string { return image(t, "MBR", two, []string{"ext4", "swap"}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4swap}, ""},
		{"GPT with ext4 and swap", func(t *testing.T) string { return image(t, "GPT", two, []string{"ext4", "swap"}) },
			provider.Disk{PartitionStyle: "GPT", Partitions: ext4swap}, ""},
		{"a logical partition", logical,
			provider.Disk{PartitionStyle: "MBR", Partitions: []provider.Partition{{Index: 1, FileSystem: "ext4"}, {Index: 5, FileSystem: "ext4"}}}, ""},
		{"ext3 seen as ext4 is the same file system", func(t *testing.T) string { return image(t, "MBR", two[:1], []string{"ext4"}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: []provider.Partition{{Index: 1, FileSystem: "ext3"}}}, ""},
		{"an unknown file system is not checked", func(t *testing.T) string { return image(t, "MBR", two[:1], []string{""}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: []provider.Partition{{Index: 1, FileSystem: "zfs"}}}, ""},
		{"a source without partitions", func(t *testing.T) string { return image(t, "", nil, nil) },
			provider.Disk{PartitionStyle: "MBR"}, ""},
		{"the copy never wrote the file system", func(t *testing.T) string { return image(t, "MBR", two, []string{"ext4", ""}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4swap}, "no swap signature"},
		{"another file system", func(t *testing.T) string { return image(t, "MBR", two, []string{"ext4", "ext4"}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4swap}, `no swap signature where the source had one (found "ext4")`},
		{"a partition is missing", func(t *testing.T) string { return image(t, "MBR", two[:1], []string{"ext4"}) },
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4swap}, "partition 2 of the source is missing"},
		{"another table style", func(t *testing.T) string { return image(t, "MBR", two, []string{"ext4", "swap"}) },
			provider.Disk{PartitionStyle: "GPT", Partitions: ext4swap}, "the source had GPT"},
		{"no table at all", func(t *testing.T) string { return image(t, "", nil, nil) },
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4swap}, "no partition table"},
		{"no disk at all", func(t *testing.T) string { return t.TempDir() + "/missing.img" },
			provider.Disk{PartitionStyle: "MBR"}, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkDisk(c.path(t), c.want)
			if c.fails == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.fails)
		})
	}
}
