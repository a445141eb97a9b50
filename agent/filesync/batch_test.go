//go:build linux

package filesync

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The manifest's batches: frames close past entriesFrameLen, each decodes
// to its own entries, all of them in order, and an empty batch sends none.
func TestBatchFrames(t *testing.T) {
	var b batch
	assert.Nil(t, b.take(), "a batch without records makes no frame")
	var want []entry
	var frames [][]byte
	for i := range 3000 {
		e := fileEntry(fmt.Sprintf("dir/file-%04d", i), int64(i))
		want = append(want, e)
		b.buf = appendEntry(b.buf, &e)
		if b.add() {
			frames = append(frames, b.take())
		}
	}
	frames = append(frames, b.take())
	assert.Nil(t, b.take(), "take starts an empty batch")
	require.Greater(t, len(frames), 1, "3000 entries fill more than one frame")
	var got []entry
	for _, p := range frames {
		require.NotNil(t, p)
		assert.Less(t, len(p), entriesFrameLen+128, "a frame closes once past entriesFrameLen")
		require.NoError(t, decodeEntries(p, func(e *entry) error {
			got = append(got, *e)
			return nil
		}))
	}
	assert.Equal(t, want, got)
}

// A batch frame counts at least one record and no more than it has bytes.
func TestBatchCount(t *testing.T) {
	for _, tc := range []struct {
		p  []byte
		ok bool
	}{
		{[]byte{0}, false},
		{[]byte{5, 1, 2}, false},
		{[]byte{2, 1, 2}, true},
		{[]byte{}, false},
	} {
		r := &reader{p: tc.p}
		r.batchCount(tc.p)
		assert.Equal(t, tc.ok, r.err == nil, "%v: %v", tc.p, r.err)
	}
}

// A hole's hash, computed without a buffer of its size, is the hash of as
// many zero bytes, across the 1 MiB of zeroBuf.
func TestZeroSum(t *testing.T) {
	for _, n := range []int64{0, 1, pageSize, deltaBlockSize, 1 << 20, 1<<20 + 1, 3<<20 + 7} {
		assert.Equal(t, xxhash.Sum64(make([]byte, n)), zeroSum(n), "%d bytes", n)
	}
}
