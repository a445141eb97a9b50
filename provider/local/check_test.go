package local

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/provider"
)

// image writes a disk image with an MBR or GPT table whose partitions start
// at the given LBAs, and the given file-system signatures written at them.
func image(t *testing.T, style string, parts []uint64, fs []string) string {
	t.Helper()
	b := make([]byte, 8<<20)
	b[510], b[511] = 0x55, 0xAA
	switch style {
	case "MBR":
		for i, lba := range parts {
			e := b[446+16*i:]
			e[4] = 0x83
			binary.LittleEndian.PutUint32(e[8:], uint32(lba))
			binary.LittleEndian.PutUint32(e[12:], 2048)
		}
	case "GPT":
		e := b[446:]
		e[4] = 0xEE
		binary.LittleEndian.PutUint32(e[8:], 1)
		h := b[512:]
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint64(h[72:], 2) // entries at LBA 2
		binary.LittleEndian.PutUint32(h[80:], 128)
		binary.LittleEndian.PutUint32(h[84:], 128)
		for i, lba := range parts {
			ent := b[1024+128*i:]
			ent[0] = 0xAF // a non-zero type GUID
			binary.LittleEndian.PutUint64(ent[32:], lba)
		}
	}
	for i, name := range fs {
		if name == "" {
			continue
		}
		m := fsMagic[name]
		copy(b[int64(parts[i])*512+m.off:], m.magic)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func TestCheckDisk(t *testing.T) {
	ext4xfs := []provider.Partition{{Index: 1, FileSystem: "ext4"}, {Index: 2, FileSystem: "xfs"}}
	cases := []struct {
		name  string
		path  string
		want  provider.Disk
		fails string
	}{
		{"MBR with ext4 and xfs", image(t, "MBR", []uint64{2048, 8192}, []string{"ext4", "xfs"}),
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4xfs}, ""},
		{"GPT with swap and btrfs", image(t, "GPT", []uint64{2048, 4096}, []string{"swap", "btrfs"}),
			provider.Disk{PartitionStyle: "GPT", Partitions: []provider.Partition{{Index: 1, FileSystem: "swap"}, {Index: 2, FileSystem: "btrfs"}}}, ""},
		{"an unknown file system is not checked", image(t, "MBR", []uint64{2048}, []string{""}),
			provider.Disk{PartitionStyle: "MBR", Partitions: []provider.Partition{{Index: 1, FileSystem: "zfs"}}}, ""},
		{"a source without partitions", image(t, "", nil, nil), provider.Disk{PartitionStyle: "MBR"}, ""},
		{"the copy never wrote the file system", image(t, "MBR", []uint64{2048, 8192}, []string{"ext4", ""}),
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4xfs}, "no xfs signature"},
		{"a partition is missing", image(t, "MBR", []uint64{2048}, []string{"ext4"}),
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4xfs}, "partition 2 of the source is missing"},
		{"another table style", image(t, "MBR", []uint64{2048, 8192}, []string{"ext4", "xfs"}),
			provider.Disk{PartitionStyle: "GPT", Partitions: ext4xfs}, "the source had GPT"},
		{"no table at all", filepath.Join(t.TempDir(), "blank.img"),
			provider.Disk{PartitionStyle: "MBR", Partitions: ext4xfs}, ""},
	}
	require.NoError(t, os.WriteFile(cases[len(cases)-1].path, make([]byte, 1<<20), 0o600))
	cases[len(cases)-1].fails = "no partition table"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkDisk(c.path, c.want)
			if c.fails == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.fails)
		})
	}
}

func FuzzPartitionStarts(f *testing.F) {
	b := make([]byte, 1024)
	b[510], b[511] = 0x55, 0xAA
	b[446+4], b[446+8] = 0xEE, 1
	copy(b[512:], "EFI PART")
	f.Add(b)
	f.Fuzz(func(t *testing.T, head []byte) {
		r := &sliceReader{head}
		starts, _, err := partitionStarts(r, head)
		if err == nil && len(starts) > 256 {
			t.Fatalf("%d partitions", len(starts))
		}
	})
}

type sliceReader struct{ b []byte }

func (s *sliceReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(s.b)) {
		return 0, os.ErrNotExist
	}
	n := copy(p, s.b[off:])
	if n < len(p) {
		return n, os.ErrNotExist
	}
	return n, nil
}
