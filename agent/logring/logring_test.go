package logring

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRing(t *testing.T) {
	r := New(1 << 10)
	assert.Empty(t, r.Bytes())
	n, err := r.Write([]byte("line 1\nline 2\n"))
	require.NoError(t, err)
	assert.Equal(t, 14, n)
	assert.Equal(t, "line 1\nline 2\n", string(r.Bytes()))

	// Past its size the ring keeps the newest whole lines, and says so.
	var all bytes.Buffer
	for i := range 200 {
		line := fmt.Sprintf("line %03d of the agent's log\n", i)
		all.WriteString(line)
		_, _ = r.Write([]byte(line))
	}
	got := string(r.Bytes())
	assert.True(t, strings.HasPrefix(got, "[sms-agent: earlier log lines were dropped"))
	body := got[strings.IndexByte(got, '\n')+1:]
	assert.True(t, strings.HasSuffix(all.String(), body), "the newest bytes, in order")
	assert.True(t, strings.HasPrefix(body, "line "), "starting at a whole line: %q", body[:20])
	assert.LessOrEqual(t, len(body), 1<<10)
	assert.Greater(t, len(body), 1<<10-40)

	// A write larger than the ring keeps its end.
	big := strings.Repeat("x", 3000) + "\nthe end\n"
	_, _ = r.Write([]byte(big))
	assert.True(t, strings.HasSuffix(string(r.Bytes()), "\nthe end\n"))
}

func TestRingConcurrent(t *testing.T) {
	r := New(4 << 10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_, _ = fmt.Fprintf(r, "goroutine %d line %d\n", g, i)
				if i%100 == 0 {
					_ = r.Bytes()
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSuffix(string(r.Bytes()), "\n"), "\n")[1:] {
		assert.True(t, strings.HasPrefix(l, "goroutine "), "whole lines only: %q", l)
	}
}
