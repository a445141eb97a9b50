package sourcestate

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/sms"
)

// TestMatrix walks every cycle × every state against the SMS.7728 table.
func TestMatrix(t *testing.T) {
	want := map[Cycle]string{
		sms.CycleChecking:    "unavailable waiting unconnected",
		sms.CycleSetting:     "waiting unconnected",
		sms.CycleReplicating: "initialize replicate deleting stopping error stopped unconnected",
		sms.CycleSyncing:     "syncing cloning deleting stopping error stopped unconnected",
		sms.CycleCutovering:  "cutovering deleting stopping error stopped unconnected",
		sms.CycleCutovered:   "finished deleting stopping error stopped unconnected",
	}
	all := append(append([]State(nil), sms.SourceStates...), sms.SourceUnconnected)
	for _, c := range sms.Cycles {
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
	assert.Error(t, Check("nonsense", sms.SourceWaiting))
	// An unknown state is refused in every cycle, not let through.
	for _, c := range sms.Cycles {
		assert.ErrorContains(t, Check(c, "paused"), "unknown source state", c)
		assert.Error(t, Check(c, ""), c)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want State
		ok   bool
	}{
		{"WAITING", sms.SourceWaiting, true}, {"waiting", sms.SourceWaiting, true}, {"INIT", sms.SourceInitialize, true},
		{"initialize", sms.SourceInitialize, true}, {"UNCONNECTED", sms.SourceUnconnected, true}, {" Finished ", sms.SourceFinished, true},
		{"", "", false}, {"paused", "", false},
	}
	for _, tc := range cases {
		got, ok := ParseState(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	c, ok := ParseCycle("CUTOVERED")
	assert.True(t, ok)
	assert.Equal(t, sms.CycleCutovered, c)
	_, ok = ParseCycle("done")
	assert.False(t, ok)
}

func TestBusy(t *testing.T) {
	for _, s := range []State{sms.SourceInitialize, sms.SourceReplicate, sms.SourceSyncing, sms.SourceCloning, sms.SourceCutovering, sms.SourceStopping, sms.SourceDeleting} {
		assert.True(t, Busy(s), s)
	}
	for _, s := range []State{sms.SourceWaiting, sms.SourceUnavailable, sms.SourceStopped, sms.SourceError, sms.SourceFinished, sms.SourceUnconnected} {
		assert.False(t, Busy(s), s)
	}
}
