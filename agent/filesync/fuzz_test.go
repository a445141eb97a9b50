//go:build linux

package filesync

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func seedEntries() [][]byte {
	var out [][]byte
	for _, es := range [][]entry{
		{rootEntry},
		{rootEntry, fileEntry("a", 10), {Kind: kSymlink, Path: "l", Target: "/etc/passwd", UID: 1, GID: 2, MtimeNs: -5}},
		{{Kind: kFile, Flags: flagLinkSource, Path: "x/y", Mode: 0o4755, Size: 1 << 40}, {Kind: kHardlink, Path: "x/z", Link: 0}},
		{{Kind: kSpecial, Path: "fifo", Mode: sIFIFO | 0o644}, {Kind: kSpecial, Path: "dev", Mode: sIFCHR | 0o600, Rdev: 0x0501}},
		{fileEntry("../escape", 1)},
		{fileEntry("ünï cødé\nname", 1)},
	} {
		out = append(out, entriesFrame(es...).p)
	}
	return out
}

// FuzzDecodeEntries: no input panics or allocates without bound; whatever
// decodes is a valid entry that survives a round trip.
func FuzzDecodeEntries(f *testing.F) {
	for _, s := range seedEntries() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []entry
		err := decodeEntries(data, func(e *entry) error {
			if err := checkRel(e.Path); err != nil {
				t.Fatalf("decoded an invalid path %q", e.Path)
			}
			if e.Kind < kDir || e.Kind > kSpecial {
				t.Fatalf("decoded kind %d", e.Kind)
			}
			if e.Kind == kSymlink && e.Target == "" {
				t.Fatal("empty symlink target")
			}
			got = append(got, *e)
			return nil
		})
		if err != nil {
			return
		}
		p := binary.AppendUvarint(nil, uint64(len(got)))
		for i := range got {
			p = appendEntry(p, &got[i])
		}
		var again []entry
		if err := decodeEntries(p, func(e *entry) error { again = append(again, *e); return nil }); err != nil {
			t.Fatalf("re-encoded entries do not decode: %v", err)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip: %+v != %+v", got, again)
		}
	})
}

// FuzzDecodeBegin covers the other frames a sender controls before any
// file is touched.
func FuzzDecodeBegin(f *testing.F) {
	f.Add(appendProtected([]byte{protoVersion}, []string{"proc", "tmp"}))
	f.Add([]byte{protoVersion, 1, 2, '.', '.'})
	f.Fuzz(func(t *testing.T, data []byte) {
		prot, err := decodeBegin(data)
		if err != nil {
			return
		}
		for p := range prot {
			if checkRel(p) != nil || p == "." {
				t.Fatalf("accepted protected path %q", p)
			}
		}
	})
}

func TestSeedCorpusDecodes(t *testing.T) {
	// The checked-in corpus (testdata/fuzz) starts from these.
	for i, s := range seedEntries() {
		err := decodeEntries(s, func(*entry) error { return nil })
		if (err != nil) != (i == 4) {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
