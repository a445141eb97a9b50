//go:build linux

package filesync

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/transport"
)

type rawFrame struct {
	typ uint8
	p   []byte
}

func entriesFrame(es ...entry) rawFrame {
	p := binary.AppendUvarint(nil, uint64(len(es)))
	for i := range es {
		p = appendEntry(p, &es[i])
	}
	return rawFrame{tEntries, p}
}

func beginFrame(prot ...string) rawFrame {
	return rawFrame{tBegin, appendProtected([]byte{protoVersion}, prot)}
}

func endFrame(n uint64) rawFrame { return rawFrame{tManifestEnd, be64(nil, n)} }

func fileFrame(idx uint32, size uint64, mode byte) rawFrame {
	return rawFrame{tFile, append(be64(be32(nil, idx), size), mode)}
}

func dataFrame(off uint64, data []byte) rawFrame {
	p := be32(be64(nil, off), uint32(len(data)))
	return rawFrame{tData, append(append(p, 0), data...)}
}

func fileEndFrame(size uint64, data []byte) rawFrame {
	return rawFrame{tFileEnd, be64(be64(nil, size), xxhash.Sum64(data))}
}

var (
	rootEntry = entry{Kind: kDir, Path: ".", Mode: 0o755}
	done      = rawFrame{tDone, nil}
)

func fileEntry(p string, size int64) entry {
	return entry{Kind: kFile, Path: p, Mode: 0o644, Size: size, MtimeNs: 1e18}
}

// talk sends frames as a hostile or broken sender would and returns what
// the receiver answered: nil after a result, else the error it reported.
func talk(t *testing.T, srv *server, frames []rawFrame, closeAfter bool) error {
	c := srv.dial(t, transport.KindFile)
	defer c.Close()
	for _, f := range frames {
		if err := c.Send(f.typ, f.p); err != nil {
			return err
		}
	}
	require.NoError(t, c.Flush())
	if closeAfter {
		c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, _, err := c.Recv()
		if err != nil {
			return err
		}
		if typ == tResult {
			return nil
		}
	}
}

func TestHostileSender(t *testing.T) {
	hello := []byte("hello\n")
	deep := []entry{rootEntry}
	for p := "a"; len(deep) < maxDepth+5; p += "/a" {
		deep = append(deep, entry{Kind: kDir, Path: p, Mode: 0o755})
	}
	trunc := entriesFrame(rootEntry, fileEntry("f", 3))
	trunc.p = trunc.p[:len(trunc.p)-2]
	trailing := entriesFrame(rootEntry)
	trailing.p = append(trailing.p, 0)
	overcount := entriesFrame(rootEntry)
	overcount.p[0] = 3

	for _, tc := range []struct {
		name    string
		frames  func(outside string) []rawFrame
		planted bool   // the target has planted -> outside beforehand
		close   bool   // the sender hangs up after its frames
		wantErr string // "" for a pass that must succeed
	}{
		{name: "dot-dot path", wantErr: "escapes", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("../escape", 6)), endFrame(2),
				fileFrame(1, 6, 0), dataFrame(0, hello), fileEndFrame(6, hello), done}
		}},
		{name: "absolute path", wantErr: "absolute", frames: func(outside string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: outside + "/evil", Mode: 0o755})}
		}},
		{name: "unclean path", wantErr: "not clean", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: "x/../../y"})}
		}},
		{name: "NUL in path", wantErr: "NUL", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("a\x00b", 1))}
		}},
		{name: "file through a symlink of the manifest", wantErr: "parent is not a directory", frames: func(outside string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kSymlink, Path: "link", Target: outside},
				fileEntry("link/x", 6)), endFrame(3), fileFrame(2, 6, 0), dataFrame(0, hello), fileEndFrame(6, hello), done}
		}},
		{name: "dir through a symlink of the manifest", wantErr: "parent is not a directory", frames: func(outside string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: "a"},
				entry{Kind: kSymlink, Path: "a/l", Target: outside}, entry{Kind: kDir, Path: "a/l/x"})}
		}},
		{name: "file through a planted symlink", planted: true, wantErr: "parent is not a directory", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("planted/passwd", 6))}
		}},
		{name: "planted symlink replaced by a directory", planted: true, frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: "planted", Mode: 0o755},
				fileEntry("planted/passwd", 6)), endFrame(3), fileFrame(2, 6, 0), dataFrame(0, hello), fileEndFrame(6, hello), done}
		}},
		{name: "hard link to a later entry", wantErr: "hard link", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kHardlink, Path: "h", Link: 5})}
		}},
		{name: "hard link to a directory", wantErr: "hard link", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: "d"}, entry{Kind: kHardlink, Path: "h", Link: 1})}
		}},
		{name: "hard link to a symlink out", wantErr: "hard link", frames: func(outside string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kSymlink, Path: "s", Target: outside + "/keep"},
				entry{Kind: kHardlink, Path: "h", Link: 1})}
		}},
		{name: "duplicate entry", wantErr: "twice", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("a", 1), fileEntry("a", 1))}
		}},
		{name: "root not first", wantErr: "root", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(entry{Kind: kDir, Path: "a"})}
		}},
		{name: "too deep", wantErr: "too deep", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(deep...)}
		}},
		{name: "truncated entries", wantErr: "truncated", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), trunc}
		}},
		{name: "trailing bytes", wantErr: "trailing", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), trailing}
		}},
		{name: "entry count over the frame", wantErr: "truncated", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), overcount}
		}},
		{name: "unknown entry kind", wantErr: "kind", frames: func(string) []rawFrame {
			f := entriesFrame(rootEntry, fileEntry("x", 1))
			f.p[len(appendEntry(binary.AppendUvarint(nil, 2), &rootEntry))] = 99
			return []rawFrame{beginFrame(), f}
		}},
		{name: "wrong manifest count", wantErr: "end of manifest", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry), endFrame(7)}
		}},
		{name: "data not asked for", wantErr: "not asked for", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry), endFrame(1), fileFrame(0, 6, 0)}
		}},
		{name: "data past the declared size", wantErr: "bad data frame", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 3)), endFrame(2), fileFrame(1, 3, 0), dataFrame(0, hello)}
		}},
		{name: "data out of order", wantErr: "expected 0", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2), fileFrame(1, 6, 0), dataFrame(3, hello[:3])}
		}},
		{name: "corrupt compressed data", wantErr: "corrupt", frames: func(string) []rawFrame {
			bad := rawFrame{tData, append(be32(be64(nil, 0), 6), flagS2, 0xff, 0xff, 0xff, 0x0f, 1, 2)}
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2), fileFrame(1, 6, 0), bad}
		}},
		{name: "copy without an old file", wantErr: "copy outside", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2), fileFrame(1, 6, 0),
				{tCopy, be64(be64(nil, 0), 6)}}
		}},
		{name: "checksum mismatch", wantErr: "checksum", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2), fileFrame(1, 6, 0),
				dataFrame(0, hello), fileEndFrame(6, []byte("other"))}
		}},
		{name: "unknown frame", wantErr: "unexpected frame", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), {200, nil}}
		}},
		{name: "ends early", wantErr: "ended early", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), done}
		}},
		{name: "bad protected path", wantErr: "protected", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame("../x")}
		}},
		{name: "bad version", wantErr: "version", frames: func(string) []rawFrame {
			return []rawFrame{{tBegin, []byte{9, 0}}}
		}},
		{name: "no begin", wantErr: "expected the start", frames: func(string) []rawFrame {
			return []rawFrame{entriesFrame(rootEntry)}
		}},
		{name: "hang up mid-manifest", close: true, wantErr: "hang-up", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, entry{Kind: kDir, Path: "a"})}
		}},
		{name: "hang up mid-file", close: true, wantErr: "hang-up", frames: func(string) []rawFrame {
			return []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 12)), endFrame(2), fileFrame(1, 12, 0), dataFrame(0, hello)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "target")
			require.NoError(t, os.Mkdir(dst, 0o755))
			outside := t.TempDir()
			writeFile(t, filepath.Join(outside, "keep"), []byte("untouched"), 0o644)
			if tc.planted {
				require.NoError(t, os.Symlink(outside, filepath.Join(dst, "planted")))
			}
			before := snapshot(t, outside)
			srv := receiverAt(t, dst)

			answer := talk(t, srv, tc.frames(outside), tc.close)
			rerr := srv.result(t)

			if tc.wantErr == "" {
				require.NoError(t, answer)
				require.NoError(t, rerr)
			} else {
				require.Error(t, rerr)
				if !tc.close { // a hang-up shows as EOF or as a failed write
					assert.Contains(t, rerr.Error(), tc.wantErr)
					var re *transport.RemoteError
					require.ErrorAs(t, answer, &re, "the sender is told why")
					assert.Contains(t, re.Msg, tc.wantErr)
				}
			}
			assert.Equal(t, before, snapshot(t, outside), "nothing outside the root changed")
			names, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, names, 1, "nothing next to the root")
			assert.Empty(t, tempNames(t, dst))
			if tc.planted && tc.wantErr == "" {
				fi, err := os.Lstat(filepath.Join(dst, "planted"))
				require.NoError(t, err)
				assert.True(t, fi.IsDir(), "the planted symlink became a real directory")
				b, err := os.ReadFile(filepath.Join(dst, "planted/passwd"))
				require.NoError(t, err)
				assert.Equal(t, hello, b)
			}
			if tc.planted && tc.wantErr != "" {
				target, err := os.Readlink(filepath.Join(dst, "planted"))
				if err == nil {
					assert.Equal(t, outside, target)
				}
			}
		})
	}
}
