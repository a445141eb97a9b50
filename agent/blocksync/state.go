package blocksync

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// diskState is what the agent remembers of one disk between passes and
// across restarts.
type diskState struct {
	Size      int64 `json:"size"`
	BlockSize int   `json:"block_size"`
	// Copied: the full copy is on the target (synced) up to this offset.
	Copied int64 `json:"copied"`
	// Full: the full copy completed once; passes after it are syncs.
	Full bool `json:"full"`
}

// state is a task's checkpoint: state.json (small, replaced atomically) and
// one hash file per disk (8 bytes per block, written in place). A hash of 0
// means "not on the target yet".
type state struct {
	dir   string
	Disks map[int]*diskState `json:"disks"`
}

func loadState(dir string) (*state, error) {
	s := &state{dir: dir, Disks: map[int]*diskState{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blocksync: state dir: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blocksync: state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		// A damaged checkpoint costs a full copy, not a wrong one.
		return &state{dir: dir, Disks: map[int]*diskState{}}, nil
	}
	if s.Disks == nil {
		s.Disks = map[int]*diskState{}
	}
	return s, nil
}

func (s *state) save() error {
	if s.dir == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, "state.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("blocksync: save state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("blocksync: save state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("blocksync: save state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "state.json"))
}

// hashFile holds a disk's block hashes.
type hashFile struct {
	f      *os.File
	hashes []uint64
}

func openHashes(dir string, disk int, blocks int64, keep bool) (*hashFile, error) {
	h := &hashFile{hashes: make([]uint64, blocks)}
	if dir == "" {
		return h, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("disk-%d.hashes", disk)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blocksync: hashes: %w", err)
	}
	h.f = f
	if !keep {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Truncate(blocks * 8); err != nil {
		f.Close()
		return nil, err
	}
	if keep {
		buf := make([]byte, 64<<10)
		for i := int64(0); i < blocks; {
			n := min(int64(len(buf)/8), blocks-i)
			if _, err := f.ReadAt(buf[:n*8], i*8); err != nil {
				f.Close()
				return nil, fmt.Errorf("blocksync: read hashes: %w", err)
			}
			for j := int64(0); j < n; j++ {
				h.hashes[i+j] = binary.LittleEndian.Uint64(buf[j*8:])
			}
			i += n
		}
	}
	return h, nil
}

// commit records hashes of blocks [from, to) and syncs the file.
func (h *hashFile) commit(from, to int64, hs []uint64) error {
	copy(h.hashes[from:to], hs)
	if h.f == nil || to <= from {
		return nil
	}
	buf := make([]byte, (to-from)*8)
	for i := range to - from {
		binary.LittleEndian.PutUint64(buf[i*8:], hs[i])
	}
	if _, err := h.f.WriteAt(buf, from*8); err != nil {
		return fmt.Errorf("blocksync: write hashes: %w", err)
	}
	return h.f.Sync()
}

func (h *hashFile) close() {
	if h.f != nil {
		h.f.Close()
	}
}

// blockHash is a block's hash; never 0 (0 means unknown).
func blockHash(b []byte) uint64 { return xxhash.Sum64(b) | 1 }

func isZero(b []byte) bool {
	// Compare 8 bytes at a time.
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
