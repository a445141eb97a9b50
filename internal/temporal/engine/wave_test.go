package engine

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/workflows"
)

// A wave validator's refusal (type = wave code, details = params) comes
// back as the wave's own error: code, status and message with its params.
func TestMapErrorWaveCodes(t *testing.T) {
	for _, d := range []wave.ErrorDef{wave.ErrNotAwaiting, wave.ErrBadTransition} {
		want := d.New("PAUSED", "pause")
		wrapped := fmt.Errorf("update: %w", temporal.NewApplicationError(want.Message, string(want.Code), want.Params))
		var got *smserr.Error
		require.True(t, errors.As(MapError(wrapped), &got), d.Code)
		assert.Equal(t, want, got)
	}
	var got *smserr.Error
	require.True(t, errors.As(MapError(temporal.NewApplicationError("m", "SMS.8503")), &got))
	assert.Equal(t, http.StatusConflict, got.Status, "no params: still the wave's status")
}

// The Schedule fires once: a calendar entry for the very second, year
// included, in UTC.
func TestWaveScheduleSpecFiresOnce(t *testing.T) {
	at := time.Date(2026, 12, 24, 23, 30, 15, 0, time.FixedZone("CET", 3600))
	s := waveSpec(at)
	require.Len(t, s.Calendars, 1)
	c := s.Calendars[0]
	one := func(v int) []client.ScheduleRange { return []client.ScheduleRange{{Start: v}} }
	assert.Equal(t, one(2026), c.Year)
	assert.Equal(t, one(12), c.Month)
	assert.Equal(t, one(24), c.DayOfMonth)
	assert.Equal(t, one(22), c.Hour, "UTC")
	assert.Equal(t, one(30), c.Minute)
	assert.Equal(t, one(15), c.Second)
	a := waveAction(workflows.WaveInput{WaveID: "w1", TimeZone: "Europe/Berlin"})
	assert.Equal(t, "wave-schedule/w1", a.ID, "Temporal appends the time; WaveStartWorkflow starts wave/w1")
	assert.Equal(t, reflect.ValueOf(workflows.WaveStartWorkflow).Pointer(), reflect.ValueOf(a.Workflow).Pointer())
	assert.Equal(t, workflows.TaskQueue, a.TaskQueue)
	v, ok := a.TypedSearchAttributes.GetKeyword(waveSA)
	assert.True(t, ok)
	assert.Equal(t, "w1", v)
}

func TestWaveURLs(t *testing.T) {
	e := &Engine{Namespace: "default", UIBase: "http://127.0.0.1:8233/"}
	assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/wave%2Fw1", e.WaveRunURL("w1"))
	assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/schedules/wave-schedule%2Fw1", e.WaveScheduleURL("w1"))
	assert.Empty(t, (&Engine{}).WaveRunURL("w1"))
}
