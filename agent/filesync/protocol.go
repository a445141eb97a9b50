//go:build linux

package filesync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Frame types. Sender (source agent) → receiver (target):
const (
	tBegin       uint8 = 1  // version u8 | protected paths (uvarint n, n × str)
	tEntries     uint8 = 2  // uvarint n | n × entry (see appendEntry)
	tManifestEnd uint8 = 3  // entries u64
	tFile        uint8 = 4  // index u32 | size u64 | mode u8 (0 whole, 1 delta)
	tData        uint8 = 5  // offset u64 | rawLen u32 | flags u8 | data (flags&1: s2)
	tHole        uint8 = 6  // offset u64 | len u64 (zeros: left as a hole)
	tCopy        uint8 = 7  // offset u64 | len u64 (same bytes as the target's old file)
	tFileEnd     uint8 = 8  // size u64 | xxhash64 of the data frames' raw bytes
	tGone        uint8 = 9  // index u32 (vanished or no longer a regular file)
	tDone        uint8 = 10 // (every requested file has been answered)
)

// Receiver → sender:
const (
	tWant   uint8 = 32 // skippedFiles uvarint | skippedBytes uvarint | n uvarint | n × index uvarint
	tDelta  uint8 = 33 // index u32 | blockSize u32 | targetSize u64 | total u64 | first u64 | hashes u64…
	tReqEnd uint8 = 34 // (no more requests)
	tResult uint8 = 35 // deleted uvarint | written uvarint
)

// Verification (KindVerify):
const (
	tVBegin  uint8 = 64 // version u8 | protected paths
	tVFiles  uint8 = 65 // uvarint n | n × (str path | size uvarint | hash u64)
	tVEnd    uint8 = 66 // files u64
	tVResult uint8 = 67 // total, different, missing, extra uvarint | n uvarint | n × str
)

const protoVersion = 1

const (
	flagS2 = 1

	modeWhole = 0
	modeDelta = 1
)

// Limits a peer may not exceed.
const (
	maxPathLen    = 4096
	maxTargetLen  = 4095
	maxDepth      = 1024
	maxFileSize   = 1 << 60
	maxRawChunk   = 4 << 20
	maxHashBlocks = 1 << 21
	minBlockSize  = 4 << 10
	maxBlockSize  = 64 << 20
	maxProtected  = 1 << 16
)

type entryKind uint8

const (
	kDir      entryKind = 1
	kFile     entryKind = 2
	kSymlink  entryKind = 3
	kHardlink entryKind = 4 // another name of an earlier file entry
	kSpecial  entryKind = 5 // fifo, character or block device
)

func (k entryKind) String() string {
	switch k {
	case kDir:
		return "dir"
	case kFile:
		return "file"
	case kSymlink:
		return "symlink"
	case kHardlink:
		return "hardlink"
	case kSpecial:
		return "special"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// flagLinkSource marks a file that later hardlink entries refer to.
const flagLinkSource = 1

// File type bits of st_mode that a special entry may carry.
const (
	sIFMT  = 0o170000
	sIFIFO = 0o010000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
)

// entry is one line of the manifest. Its index is its position in the
// manifest (the root "." is 0).
type entry struct {
	Kind    entryKind
	Flags   uint8
	Path    string // relative to the root, cleaned, "/"-separated; "." is the root
	Mode    uint32 // permission bits (07777); a special entry adds its S_IFMT bits
	UID     uint32
	GID     uint32
	MtimeNs int64
	Size    int64  // file
	Target  string // symlink
	Link    uint32 // hardlink: index of the earlier file entry
	Rdev    uint64 // special
}

var errShort = errors.New("filesync: truncated frame")

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendEntry(b []byte, e *entry) []byte {
	b = append(b, byte(e.Kind), e.Flags)
	b = appendStr(b, e.Path)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.UID))
	b = binary.AppendUvarint(b, uint64(e.GID))
	b = binary.AppendVarint(b, e.MtimeNs)
	switch e.Kind {
	case kFile:
		b = binary.AppendUvarint(b, uint64(e.Size))
	case kSymlink:
		b = appendStr(b, e.Target)
	case kHardlink:
		b = binary.AppendUvarint(b, uint64(e.Link))
	case kSpecial:
		b = binary.AppendUvarint(b, e.Rdev)
	}
	return b
}

// reader decodes a frame payload; the first error sticks.
type reader struct {
	p   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.p)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) u8() uint8 {
	if r.err != nil || len(r.p) < 1 {
		r.fail(errShort)
		return 0
	}
	v := r.p[0]
	r.p = r.p[1:]
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.p) < 4 {
		r.fail(errShort)
		return 0
	}
	v := binary.BigEndian.Uint32(r.p)
	r.p = r.p[4:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.p) < 8 {
		r.fail(errShort)
		return 0
	}
	v := binary.BigEndian.Uint64(r.p)
	r.p = r.p[8:]
	return v
}

// str reads a length-prefixed string of at most limit bytes.
func (r *reader) str(limit int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) {
		r.fail(fmt.Errorf("filesync: string of %d bytes over the %d limit", n, limit))
		return ""
	}
	if uint64(len(r.p)) < n {
		r.fail(errShort)
		return ""
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	return s
}

// end fails unless the payload was consumed exactly.
func (r *reader) end() error {
	if r.err == nil && len(r.p) != 0 {
		r.fail(fmt.Errorf("filesync: %d trailing bytes in frame", len(r.p)))
	}
	return r.err
}

// checkRel accepts a path relative to the root: cleaned, "/"-separated, no
// NUL, not absolute, not climbing out with "..". The root itself is ".".
func checkRel(p string) error {
	switch {
	case p == "":
		return errors.New("filesync: empty path")
	case len(p) > maxPathLen:
		return fmt.Errorf("filesync: path of %d bytes", len(p))
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("filesync: NUL byte in path %q", p)
	case p[0] == '/':
		return fmt.Errorf("filesync: absolute path %q", p)
	case path.Clean(p) != p:
		return fmt.Errorf("filesync: path %q is not clean", p)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("filesync: path %q escapes the root", p)
	}
	return nil
}

// decodeEntry decodes and checks one entry (what can be checked without
// context: the manifest's order and links are checked by the receiver).
func decodeEntry(r *reader) (entry, error) {
	var e entry
	e.Kind = entryKind(r.u8())
	e.Flags = r.u8()
	e.Path = r.str(maxPathLen)
	mode := r.uvarint()
	uid := r.uvarint()
	gid := r.uvarint()
	e.MtimeNs = r.varint()
	switch e.Kind {
	case kFile:
		sz := r.uvarint()
		if r.err == nil && sz > maxFileSize {
			r.fail(fmt.Errorf("filesync: file size %d", sz))
		}
		e.Size = int64(sz)
	case kSymlink:
		e.Target = r.str(maxTargetLen)
	case kHardlink:
		l := r.uvarint()
		if r.err == nil && l > 1<<32-1 {
			r.fail(fmt.Errorf("filesync: link index %d", l))
		}
		e.Link = uint32(l)
	case kSpecial:
		e.Rdev = r.uvarint()
	case kDir:
	default:
		r.fail(fmt.Errorf("filesync: unknown entry kind %d", e.Kind))
	}
	if r.err != nil {
		return e, r.err
	}
	if uid > 1<<32-1 || gid > 1<<32-1 {
		return e, fmt.Errorf("filesync: owner %d:%d out of range", uid, gid)
	}
	e.UID, e.GID = uint32(uid), uint32(gid)
	if e.Flags&^flagLinkSource != 0 || (e.Flags != 0 && e.Kind != kFile) {
		return e, fmt.Errorf("filesync: bad entry flags %#x", e.Flags)
	}
	if e.Kind == kSpecial {
		switch mode & sIFMT {
		case sIFIFO, sIFCHR, sIFBLK:
		default:
			return e, fmt.Errorf("filesync: bad special file type %#o", mode&sIFMT)
		}
		if mode&^(sIFMT|0o7777) != 0 {
			return e, fmt.Errorf("filesync: bad mode %#o", mode)
		}
	} else if mode&^0o7777 != 0 {
		return e, fmt.Errorf("filesync: bad mode %#o", mode)
	}
	e.Mode = uint32(mode)
	if err := checkRel(e.Path); err != nil {
		return e, err
	}
	if e.Path == "." && e.Kind != kDir {
		return e, errors.New("filesync: the root must be a directory")
	}
	if e.Kind == kSymlink && (e.Target == "" || strings.IndexByte(e.Target, 0) >= 0) {
		return e, fmt.Errorf("filesync: bad symlink target for %q", e.Path)
	}
	return e, nil
}

// batch gathers records into frames of about entriesFrameLen bytes, each
// led by its record count (a uvarint): the shape of the manifest's tEntries
// frames and of verify's tVFiles frames. Records are appended to buf and
// counted with add.
type batch struct {
	buf []byte
	n   uint64
}

// add counts the record just appended to buf and tells whether the frame
// is full.
func (b *batch) add() bool {
	b.n++
	return len(b.buf) >= entriesFrameLen
}

// take returns the frame gathered so far, nil when it holds no record, and
// starts the next one.
func (b *batch) take() []byte {
	if b.n == 0 {
		return nil
	}
	p := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(b.buf)), b.n)
	p = append(p, b.buf...)
	b.buf, b.n = b.buf[:0], 0
	return p
}

// batchCount reads the record count leading a batch frame of len(p) bytes:
// at least one record, and no more than the frame has bytes.
func (r *reader) batchCount(p []byte) uint64 {
	n := r.uvarint()
	if r.err == nil && (n == 0 || n > uint64(len(p))) {
		r.fail(fmt.Errorf("filesync: bad record count %d", n))
	}
	return n
}

// decodeEntries decodes a tEntries payload, calling fn for each entry in
// order. A frame that is truncated, overlong or holds an invalid entry is an
// error.
func decodeEntries(p []byte, fn func(e *entry) error) error {
	r := &reader{p: p}
	n := r.batchCount(p)
	if r.err != nil {
		return r.err
	}
	for i := uint64(0); i < n; i++ {
		e, err := decodeEntry(r)
		if err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return r.end()
}

func appendProtected(b []byte, prot []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(prot)))
	for _, p := range prot {
		b = appendStr(b, p)
	}
	return b
}

func decodeBegin(p []byte) (map[string]bool, error) {
	r := &reader{p: p}
	if v := r.u8(); r.err == nil && v != protoVersion {
		return nil, fmt.Errorf("filesync: protocol version %d, want %d", v, protoVersion)
	}
	n := r.uvarint()
	if r.err == nil && n > maxProtected {
		return nil, fmt.Errorf("filesync: %d protected paths", n)
	}
	prot := map[string]bool{}
	for i := uint64(0); i < n && r.err == nil; i++ {
		s := r.str(maxPathLen)
		if r.err != nil {
			break
		}
		if err := checkRel(s); err != nil || s == "." {
			return nil, fmt.Errorf("filesync: bad protected path %q", s)
		}
		prot[s] = true
	}
	return prot, r.end()
}

// isProtected: rel or one of its ancestors is excluded from the pass.
func isProtected(prot map[string]bool, rel string) bool {
	if len(prot) == 0 {
		return false
	}
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if prot[p] {
			return true
		}
	}
	return false
}

func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
