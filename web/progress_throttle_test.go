package web

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/sms"
)

// TestProgressThrottle: the workflow hears of what it acts on at once and
// of routine reports once per keep-alive, so a copy that reports every 5 s
// adds a few signals an hour to the run's history instead of 720.
func TestProgressThrottle(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	type report struct {
		after    time.Duration // since t0
		task     string
		subtask  sms.Subtask
		progress int32
		over     bool
		want     bool
	}
	reports := []report{
		{0, "t1", "MIGRATE", 1, false, true},                              // the first report of a task
		{5 * time.Second, "t1", "MIGRATE", 2, false, false},               // routine
		{5 * time.Second, "t2", "MIGRATE", 1, false, true},                // tasks are apart
		{time.Minute, "t1", "MIGRATE", 3, true, true},                     // over the limit
		{time.Minute + 5*time.Second, "t1", "MIGRATE", 4, true, true},     // still over: the grace runs on reports
		{time.Minute + 10*time.Second, "t1", "MIGRATE", 5, false, true},   // back under: the grace restarts
		{time.Minute + 15*time.Second, "t1", "MIGRATE", 6, false, false},  // routine again
		{6*time.Minute + 5*time.Second, "t1", "MIGRATE", 7, false, false}, // 4m55s after the last forwarded
		{6*time.Minute + 10*time.Second, "t1", "MIGRATE", 8, false, true}, // keep-alive
		{6*time.Minute + 15*time.Second, "t1", "MIGRATE", 100, false, true},
		{6*time.Minute + 20*time.Second, "t1", "SYNC", 0, false, true}, // another sub-task
		{6*time.Minute + 25*time.Second, "t1", "SYNC", 1, false, false},
	}
	p := newProgressThrottle(progressKeepAlive(30 * time.Minute))
	for i, r := range reports {
		got := p.due(r.task, t0.Add(r.after), r.subtask, r.progress, r.over)
		assert.Equal(t, r.want, got, "report %d: %+v", i, r)
	}

	// A day of reports every 5 s on one sub-task reaches the workflow once
	// per keep-alive: 288 signals, not 17,280.
	p = newProgressThrottle(progressKeepAlive(30 * time.Minute))
	n := 0
	for at := time.Duration(0); at < 24*time.Hour; at += 5 * time.Second {
		if p.due("t1", t0.Add(at), "MIGRATE", 50, false) {
			n++
		}
	}
	assert.Equal(t, 288, n)
}

func TestProgressKeepAlive(t *testing.T) {
	for _, c := range []struct{ timeout, want time.Duration }{
		{0, 5 * time.Minute}, // the workflow's default of 30 minutes
		{30 * time.Minute, 5 * time.Minute},
		{10 * time.Minute, 150 * time.Second},
		{10 * time.Second, 2500 * time.Millisecond}, // the smallest the config allows
	} {
		assert.Equal(t, c.want, progressKeepAlive(c.timeout), fmt.Sprint(c.timeout))
	}
}
