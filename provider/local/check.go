package local

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smsflow/smsflow/provider"
)

// checkDisk tells whether a target image shows what its source disk held:
// the partition table (MBR or GPT) and, at each partition's start, the
// signature of its file system. A source disk without partitions is only
// checked for being readable.
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
	starts, style, err := partitionStarts(f, head)
	if err != nil {
		return fmt.Errorf("target disk %s (source %s): %w", path, want.Name, err)
	}
	if want.PartitionStyle != "" && !strings.EqualFold(style, want.PartitionStyle) {
		return fmt.Errorf("target disk %s: a %s partition table, the source had %s", path, style, want.PartitionStyle)
	}
	for _, p := range want.Partitions {
		start, ok := starts[p.Index]
		if !ok {
			return fmt.Errorf("target disk %s: partition %d of the source is missing", path, p.Index)
		}
		if err := checkFS(f, start, p.FileSystem); err != nil {
			return fmt.Errorf("target disk %s partition %d: %w", path, p.Index, err)
		}
	}
	return nil
}

// partitionStarts reads an MBR (primary partitions) or a GPT and returns
// each partition's byte offset by its 1-based index.
func partitionStarts(f io.ReaderAt, head []byte) (map[int32]int64, string, error) {
	if len(head) < 1024 || head[510] != 0x55 || head[511] != 0xAA {
		return nil, "", fmt.Errorf("no partition table (no MBR signature)")
	}
	starts := map[int32]int64{}
	protective := false
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*(i+1)]
		typ := e[4]
		lba := binary.LittleEndian.Uint32(e[8:])
		if typ == 0 || lba == 0 {
			continue
		}
		if typ == 0xEE {
			protective = true
			break
		}
		starts[int32(i+1)] = int64(lba) * 512
	}
	if !protective {
		return starts, "MBR", nil
	}
	gpt := head[512:1024]
	if !bytes.Equal(gpt[:8], []byte("EFI PART")) {
		return nil, "", fmt.Errorf("protective MBR without a GPT header")
	}
	entLBA := binary.LittleEndian.Uint64(gpt[72:])
	n := binary.LittleEndian.Uint32(gpt[80:])
	size := binary.LittleEndian.Uint32(gpt[84:])
	if n > 256 || size < 128 || size > 4096 || entLBA == 0 || entLBA > 1<<32 {
		return nil, "", fmt.Errorf("implausible GPT (%d entries of %d bytes at LBA %d)", n, size, entLBA)
	}
	ents := make([]byte, int(n)*int(size))
	if _, err := f.ReadAt(ents, int64(entLBA)*512); err != nil {
		return nil, "", fmt.Errorf("read GPT entries: %w", err)
	}
	for i := 0; i < int(n); i++ {
		e := ents[i*int(size):]
		if allZeroBytes(e[:16]) {
			continue
		}
		starts[int32(i+1)] = int64(binary.LittleEndian.Uint64(e[32:])) * 512
	}
	return starts, "GPT", nil
}

// fsMagic: where each file system writes its signature, from the
// partition's start.
var fsMagic = map[string]struct {
	off   int64
	magic []byte
}{
	"ext2":  {1080, []byte{0x53, 0xEF}},
	"ext3":  {1080, []byte{0x53, 0xEF}},
	"ext4":  {1080, []byte{0x53, 0xEF}},
	"xfs":   {0, []byte("XFSB")},
	"btrfs": {65600, []byte("_BHRfS_M")},
	"swap":  {4086, []byte("SWAPSPACE2")},
	"vfat":  {510, []byte{0x55, 0xAA}},
	"ntfs":  {3, []byte("NTFS    ")},
}

func checkFS(f io.ReaderAt, start int64, fs string) error {
	m, ok := fsMagic[strings.ToLower(fs)]
	if !ok {
		return nil // a file system we have no signature for: not checked
	}
	got := make([]byte, len(m.magic))
	if _, err := f.ReadAt(got, start+m.off); err != nil {
		return fmt.Errorf("read the %s signature: %w", fs, err)
	}
	if !bytes.Equal(got, m.magic) {
		return fmt.Errorf("no %s signature where the source had one", fs)
	}
	return nil
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
