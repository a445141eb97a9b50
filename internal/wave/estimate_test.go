package wave

import (
	"math"
	"strconv"
	"testing"
	"time"
)

func TestCopyEnd(t *testing.T) {
	now := testNow
	tests := []struct {
		left   int64
		mbps   float64
		want   time.Duration
		wantOK bool
	}{
		{1e9, 80, 100 * time.Second, true}, // 80 Mbit/s = 10 MB/s
		{0, 0, 0, true},                    // done is done, rate or not
		{1e9, 0, 0, false},
		{1e9, math.NaN(), 0, false},
		{math.MaxInt64, 1e-9, 0, false}, // centuries: no answer rather than an overflow
	}
	for _, tt := range tests {
		end, ok := CopyEnd(tt.left, tt.mbps, now)
		if ok != tt.wantOK || (ok && end.Sub(now) != tt.want) {
			t.Errorf("CopyEnd(%d, %v) = %s, %v; want +%s, %v", tt.left, tt.mbps, end, ok, tt.want, tt.wantOK)
		}
	}
}

func TestChurnAndFinalPass(t *testing.T) {
	h := func(n int) time.Time { return testNow.Add(time.Duration(n) * time.Hour) }
	// The first pass's 10 GB are not counted: 6 GB in 2 h.
	passes := []SyncPass{{h(2), 4e9}, {h(0), 10e9}, {h(1), 2e9}}
	c, ok := MeasureChurn(passes)
	if !ok || c.BytesPerHour != 3e9 || c.Interval != time.Hour {
		t.Fatalf("churn %+v %v", c, ok)
	}
	if passes[0].End != h(2) {
		t.Error("MeasureChurn sorted its caller's slice")
	}
	if _, ok := MeasureChurn(passes[:1]); ok {
		t.Error("one pass gave a churn")
	}
	if _, ok := MeasureChurn([]SyncPass{{h(1), 5}, {h(1), 5}}); ok {
		t.Error("no time span gave a churn")
	}

	// 3.6 GB/h = 1 MB/s = 8 Mbit/s exactly.
	c = Churn{BytesPerHour: 3.6e9, Interval: time.Hour}
	tests := []struct {
		mbps       float64
		converging bool
		want       time.Duration
	}{
		// 80 Mbit/s moves 36 GB/h: 3600 s × 3.6 / (36 − 3.6) = 400 s.
		{80, true, 400 * time.Second},
		{8, false, 0},   // churn = bandwidth: never catches up
		{7.9, false, 0}, // churn above it
		{0, true, 0},    // unknown rate: no verdict, no estimate
	}
	for _, tt := range tests {
		if got := Converging(c, tt.mbps); got != tt.converging {
			t.Errorf("Converging at %v = %v", tt.mbps, got)
		}
		d, ok := FinalPass(c, tt.mbps)
		if ok != (tt.want > 0) || (ok && (d-tt.want).Abs() > time.Millisecond) {
			t.Errorf("FinalPass at %v = %s, %v; want %s", tt.mbps, d, ok, tt.want)
		}
	}
}

func TestEstimateMember(t *testing.T) {
	h := func(n int) time.Time { return testNow.Add(time.Duration(n) * time.Hour) }
	e := EstimateMember(MemberInput{ID: "m1", BytesLeft: 1e9, Mbps: 80}, testNow)
	if e.CopyEnd == nil || !e.CopyEnd.Equal(testNow.Add(100*time.Second)) || e.ChurnBytesPerHour != nil || e.NotConverging {
		t.Errorf("copying member: %+v", e)
	}
	e = EstimateMember(MemberInput{ID: "m2", Mbps: 80, Passes: []SyncPass{{h(0), 1}, {h(1), 3.6e9}}}, testNow)
	if e.DowntimeSeconds == nil || math.Abs(*e.DowntimeSeconds-400) > 0.01 || e.NotConverging {
		t.Errorf("syncing member: %+v", e)
	}
	e = EstimateMember(MemberInput{ID: "m3", Mbps: 4, Passes: []SyncPass{{h(0), 1}, {h(1), 3.6e9}}}, testNow)
	if !e.NotConverging || e.DowntimeSeconds != nil || e.ChurnBytesPerHour == nil {
		t.Errorf("churning member: %+v", e)
	}
}

func TestSimulateCopies(t *testing.T) {
	s := func(n float64) time.Time { return testNow.Add(time.Duration(n * float64(time.Second))) }
	utc := time.UTC
	tests := []struct {
		name     string
		items    []CopyItem
		max      int
		budget   Budget
		now      time.Time
		want     []time.Time
		wantWave time.Time
		wantOK   bool
	}{
		{"sliding window of two", []CopyItem{{ID: "a", BytesLeft: 1e9}, {ID: "b", BytesLeft: 1e9}, {ID: "c", BytesLeft: 1e9}, {ID: "d", BytesLeft: 1e9}},
			2, Budget{DefaultMbps: 160}, testNow, []time.Time{s(100), s(100), s(200), s(200)}, s(200), true},
		// A member that finishes early frees its slot and share at once:
		// b runs alone at 160 after a's 50 s.
		{"a slot frees", []CopyItem{{ID: "a", BytesLeft: 5e8}, {ID: "b", BytesLeft: 2e9}, {ID: "c", BytesLeft: 5e8}},
			2, Budget{DefaultMbps: 160}, testNow, []time.Time{s(50), s(150), s(100)}, s(150), true},
		// Members already copying go first whatever the order given.
		{"copying first", []CopyItem{{ID: "q", BytesLeft: 1e9}, {ID: "c", BytesLeft: 1e9, Copying: true}},
			1, Budget{DefaultMbps: 80}, testNow, []time.Time{s(200), s(100)}, s(200), true},
		// A capped member's unused share goes to the other.
		{"capped member", []CopyItem{{ID: "a", BytesLeft: 25e6, MaxMbps: 20}, {ID: "b", BytesLeft: 1e9}},
			2, Budget{DefaultMbps: 100}, testNow, []time.Time{s(10), s(82)}, s(82), true},
		// The budget doubles at 12:00 (60 s in): 6e8 bytes then 6e8 at 20 MB/s.
		{"budget window", []CopyItem{{ID: "a", BytesLeft: 12e8}},
			1, Budget{DefaultMbps: 80, Windows: []TimeWindow{{Start: "12:00", End: "13:00", Mbps: 160}}}, testNow.Add(-time.Minute),
			[]time.Time{testNow.Add(30 * time.Second)}, testNow.Add(30 * time.Second), true},
		{"unlimited uses the measured speed", []CopyItem{{ID: "a", BytesLeft: 1e9, MaxMbps: 800}},
			1, Budget{}, testNow, []time.Time{s(10)}, s(10), true},
		{"unlimited and unmeasured", []CopyItem{{ID: "a", BytesLeft: 1e9, MaxMbps: 800}, {ID: "b", BytesLeft: 1e9}},
			2, Budget{}, testNow, []time.Time{s(10), {}}, time.Time{}, false},
		{"nothing to copy", nil, 3, Budget{DefaultMbps: 5}, testNow, []time.Time{}, testNow, true},
		{"already copied", []CopyItem{{ID: "a"}}, 1, Budget{DefaultMbps: 5}, testNow, []time.Time{testNow}, testNow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ends, wave, ok := SimulateCopies(tt.items, tt.max, tt.budget, utc, tt.now)
			if ok != tt.wantOK || !wave.Equal(tt.wantWave) {
				t.Errorf("wave end %s ok %v; want %s %v", wave, ok, tt.wantWave, tt.wantOK)
			}
			if len(ends) != len(tt.want) {
				t.Fatalf("%d ends", len(ends))
			}
			for i := range ends {
				if ends[i].Sub(tt.want[i]).Abs() > time.Millisecond || ends[i].IsZero() != tt.want[i].IsZero() {
					t.Errorf("%s ends %s, want %s", tt.items[i].ID, ends[i], tt.want[i])
				}
			}
		})
	}
}

// TestSimulateCopiesLarge: a 1,000-member wave simulates quickly, never
// ends a copy before the bytes could have moved at the whole budget, and
// finishes when the budget has moved every byte.
func TestSimulateCopiesLarge(t *testing.T) {
	items := make([]CopyItem, 1000)
	var total float64
	for i := range items {
		items[i] = CopyItem{ID: strconv.Itoa(i), BytesLeft: int64(1e8 * (1 + i%7))}
		total += float64(items[i].BytesLeft)
	}
	_, wave, ok := SimulateCopies(items, 100, Budget{DefaultMbps: 1000}, time.UTC, testNow)
	if !ok {
		t.Fatal("no estimate")
	}
	// The budget is always fully used (no caps), so the end is exact.
	want := testNow.Add(time.Duration(total / bytesPerSecond(1000) * float64(time.Second)))
	if wave.Sub(want).Abs() > time.Second {
		t.Errorf("wave end %s, want %s", wave, want)
	}
}

// BenchmarkSimulateCopies is the wave show's simulation of a running
// 1,000-member wave: a third copying (all of them, beyond max_concurrent),
// some capped by their measured speed, over a budget with a weekday window.
func BenchmarkSimulateCopies(b *testing.B) {
	items := make([]CopyItem, 334)
	for i := range items {
		items[i] = CopyItem{ID: strconv.Itoa(i), BytesLeft: int64(120<<30 - 3*i<<27), Copying: true}
		if i%10 == 0 {
			items[i].MaxMbps = 30
		}
	}
	budget := Budget{DefaultMbps: 1000, Windows: []TimeWindow{
		{Start: "08:00", End: "18:00", Weekdays: []Weekday{"MON", "TUE", "WED", "THU", "FRI"}, Mbps: 200}}}
	loc, err := LoadZone("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := SimulateCopies(items, 20, budget, loc, testNow); !ok {
			b.Fatal("no estimate")
		}
	}
}
