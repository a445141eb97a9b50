package speedlimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseClock(t *testing.T) {
	for in, want := range map[string]int{"00:00": 0, "08:30": 510, "8:30": 510, "0:00": 0, "23:59": 1439, "24:00": 1440} {
		got, err := ParseClock(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "+8:30", "008:30", " 8:30", "24:01", "25:00", "12:60", "ab:cd", "12-30", "12:3", "-1:00"} {
		_, err := ParseClock(bad)
		assert.Error(t, err, bad)
	}
}

func TestParse(t *testing.T) {
	ok := []Rule{{Start: "18:00", End: "24:00", Speed: 200}, {Start: "08:00", End: "18:00", Speed: 40, OverSpeedThreshold: 10}}
	ws, errs := Parse(ok)
	require.Empty(t, errs)
	assert.Equal(t, []Window{{From: 480, To: 1080, Speed: 40, Threshold: 10}, {From: 1080, To: 1440, Speed: 200}}, ws, "sorted")

	cases := []struct {
		name  string
		rules []Rule
		field string
	}{
		{"overlap", []Rule{{Start: "08:00", End: "12:00"}, {Start: "11:00", End: "13:00"}}, "speed_limit[1]"},
		{"overlap unsorted", []Rule{{Start: "11:00", End: "13:00"}, {Start: "08:00", End: "12:00"}}, "speed_limit[0]"},
		{"start after end", []Rule{{Start: "13:00", End: "12:00"}}, "speed_limit[0].end"},
		{"empty window", []Rule{{Start: "12:00", End: "12:00"}}, "speed_limit[0].end"},
		{"past 24:00", []Rule{{Start: "23:00", End: "24:30"}}, "speed_limit[0].end"},
		{"bad start", []Rule{{Start: "7h", End: "12:00"}}, "speed_limit[0].start"},
		{"speed", []Rule{{Start: "01:00", End: "02:00", Speed: 10001}}, "speed_limit[0].speed"},
		{"negative speed", []Rule{{Start: "01:00", End: "02:00", Speed: -1}}, "speed_limit[0].speed"},
		{"threshold", []Rule{{Start: "01:00", End: "02:00", OverSpeedThreshold: 100.5}}, "speed_limit[0].over_speed_threshold"},
		{"too many", []Rule{{Start: "01:00", End: "02:00"}, {Start: "02:00", End: "03:00"}, {Start: "03:00", End: "04:00"},
			{Start: "04:00", End: "05:00"}, {Start: "05:00", End: "06:00"}, {Start: "06:00", End: "07:00"}}, "speed_limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, errs := Parse(tc.rules)
			assert.Nil(t, ws)
			require.NotEmpty(t, errs)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			assert.Contains(t, fields, tc.field)
		})
	}
	ws, errs = Parse([]Rule{{Start: "00:00", End: "12:00"}, {Start: "12:00", End: "24:00"}})
	assert.Empty(t, errs, "touching windows do not overlap")
	assert.Len(t, ws, 2)
}

func TestAt(t *testing.T) {
	utc := time.UTC
	ws, errs := Parse([]Rule{{Start: "08:00", End: "18:00", Speed: 40, OverSpeedThreshold: 10}, {Start: "20:00", End: "24:00", Speed: 200}})
	require.Empty(t, errs)
	def := Limit{Mbps: 100, Threshold: 5}
	day := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, utc) }
	cases := []struct {
		at   time.Time
		want Limit
		next time.Time
	}{
		{day(3, 0), def, day(8, 0)},
		{day(8, 0), Limit{40, 10}, day(18, 0)},
		{day(12, 30), Limit{40, 10}, day(18, 0)},
		{day(17, 59), Limit{40, 10}, day(18, 0)},
		{day(18, 0), def, day(20, 0)},
		{day(23, 59), Limit{200, 0}, day(24, 0)},
		{day(24, 0), def, day(24+8, 0)},
	}
	for _, tc := range cases {
		got, next := At(ws, def, tc.at, utc)
		assert.Equal(t, tc.want, got, tc.at.String())
		assert.Equal(t, tc.next, next, tc.at.String())
	}
	// No rules: the default, checked again tomorrow.
	got, next := At(nil, def, day(9, 15), utc)
	assert.Equal(t, def, got)
	assert.Equal(t, day(24, 0), next)
}

func TestAtInTimeZoneAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	ws, errs := Parse([]Rule{{Start: "02:00", End: "04:00", Speed: 10}})
	require.Empty(t, errs)
	// 2026-03-29: clocks go from 02:00 to 03:00 in Berlin. At 01:30 local the
	// next boundary is the window's start, which does not exist that day:
	// time.Date normalises it to 03:00 CEST.
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, berlin)
	l, next := At(ws, Limit{}, at, berlin)
	assert.Equal(t, Limit{}, l)
	assert.Equal(t, time.Date(2026, 3, 29, 3, 0, 0, 0, berlin).UTC(), next)
	l, next = At(ws, Limit{}, time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), berlin)
	assert.Equal(t, Limit{Mbps: 10}, l)
	assert.Equal(t, time.Date(2026, 3, 29, 4, 0, 0, 0, berlin).UTC(), next)
}

func TestOver(t *testing.T) {
	assert.False(t, Over(Limit{}, 1e9), "no limit")
	assert.False(t, Over(Limit{Mbps: 100}, 1e9), "no threshold")
	assert.False(t, Over(Limit{Mbps: 100, Threshold: 10}, 110))
	assert.True(t, Over(Limit{Mbps: 100, Threshold: 10}, 110.1))
}

func FuzzParse(f *testing.F) {
	f.Add("08:00", "18:00", int32(40), 10.0, "18:00", "24:00", int32(0), 0.0)
	f.Add("24:00", "00:00", int32(-1), -5.0, "", "99:99", int32(99999), 101.0)
	f.Fuzz(func(t *testing.T, s1, e1 string, sp1 int32, th1 float64, s2, e2 string, sp2 int32, th2 float64) {
		rules := []Rule{{s1, e1, sp1, th1}, {s2, e2, sp2, th2}}
		ws, errs := Parse(rules)
		if len(errs) > 0 {
			return
		}
		for i, w := range ws {
			if w.From >= w.To || w.From < 0 || w.To > 1440 {
				t.Fatalf("accepted a bad window %+v", w)
			}
			if i > 0 && ws[i-1].To > w.From {
				t.Fatalf("accepted overlapping windows %+v", ws)
			}
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for m := 0; m < 1440; m += 7 {
			at := now.Add(time.Duration(m) * time.Minute)
			_, next := At(ws, Limit{}, at, time.UTC)
			if !next.After(at) {
				t.Fatalf("next change %v is not after %v", next, at)
			}
		}
	})
}
