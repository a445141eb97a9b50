package local

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smsflow/smsflow/agent/discover"
	"github.com/smsflow/smsflow/internal/provider"
)

// checkDisk tells whether a target image shows what its source disk held:
// the partition table and, in each partition, the file system the source
// had there. The image is read as discovery reads a source image
// (discover.ImageDisk), so logical partitions, 4 KiB sectors and GPT CRCs
// are understood alike on both sides. A source disk without partitions is
// only checked for being readable.
func checkDisk(path string, want provider.Disk) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("target disk %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("read target disk %s: %w", path, err)
	}
	if len(want.Partitions) == 0 {
		return nil
	}
	got, err := discover.ImageDisk(want.Name, path)
	if err != nil {
		return fmt.Errorf("read target disk %s: %w", path, err)
	}
	if !got.HasPartitionTable {
		return fmt.Errorf("target disk %s (source %s): no partition table", path, want.Name)
	}
	if want.PartitionStyle != "" && !strings.EqualFold(got.PartitionStyle, want.PartitionStyle) {
		return fmt.Errorf("target disk %s: a %s partition table, the source had %s", path, got.PartitionStyle, want.PartitionStyle)
	}
	found := make(map[int32]discover.PhysicalVolume, len(got.PhysicalVolumes))
	for _, pv := range got.PhysicalVolumes {
		found[pv.Index] = pv
	}
	for _, p := range want.Partitions {
		pv, ok := found[p.Index]
		if !ok {
			return fmt.Errorf("target disk %s: partition %d of the source is missing", path, p.Index)
		}
		if !discover.SameFileSystem(p.FileSystem, pv.FileSystem) {
			return fmt.Errorf("target disk %s partition %d: no %s signature where the source had one (found %q)",
				path, p.Index, p.FileSystem, pv.FileSystem)
		}
	}
	return nil
}
