package sourcestate

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMatrix walks every cycle × every state against the SMS.7728 table.
func TestMatrix(t *testing.T) {
	want := map[Cycle]string{
		Checking:    "unavailable waiting unconnected",
		Setting:     "waiting unconnected",
		Replicating: "initialize replicate deleting stopping error stopped unconnected",
		SyncingC:    "syncing cloning deleting stopping error stopped unconnected",
		CutoveringC: "cutovering deleting stopping error stopped unconnected",
		Cutovered:   "finished deleting stopping error stopped unconnected",
	}
	all := append(append([]State(nil), States...), Unconnected)
	for _, c := range Cycles {
		for _, s := range all {
			ok := false
			for _, w := range strings.Fields(want[c]) {
				ok = ok || State(w) == s
			}
			err := Check(c, s)
			if ok {
				assert.NoError(t, err, "%s/%s", c, s)
			} else {
				var me *MismatchError
				assert.True(t, errors.As(err, &me), "%s/%s must be refused", c, s)
			}
		}
	}
	assert.Error(t, Check("nonsense", Waiting))
}

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want State
		ok   bool
	}{
		{"WAITING", Waiting, true}, {"waiting", Waiting, true}, {"INIT", Initialize, true},
		{"initialize", Initialize, true}, {"UNCONNECTED", Unconnected, true}, {" Finished ", Finished, true},
		{"", "", false}, {"paused", "", false},
	}
	for _, tc := range cases {
		got, ok := ParseState(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	c, ok := ParseCycle("CUTOVERED")
	assert.True(t, ok)
	assert.Equal(t, Cutovered, c)
	_, ok = ParseCycle("done")
	assert.False(t, ok)
}

func TestBusy(t *testing.T) {
	for _, s := range []State{Initialize, Replicate, Syncing, Cloning, Cutovering, Stopping, Deleting} {
		assert.True(t, Busy(s), s)
	}
	for _, s := range []State{Waiting, Unavailable, Stopped, Error, Finished, Unconnected} {
		assert.False(t, Busy(s), s)
	}
}
