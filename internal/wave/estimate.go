package wave

import (
	"math"
	"slices"
	"sort"
	"time"
)

// bytesPerSecond is a rate in Mbit/s as bytes a second (10^6 bits, as the
// agent's throttle counts).
func bytesPerSecond(mbps float64) float64 { return mbps * 1e6 / 8 }

// seconds turns a float of seconds into a Duration, saturating instead of
// overflowing for absurd inputs.
func seconds(s float64) (time.Duration, bool) {
	if math.IsNaN(s) || s < 0 || s > float64(math.MaxInt64/int64(time.Second)) {
		return 0, false
	}
	return time.Duration(s * float64(time.Second)), true
}

// CopyEnd is when a copy with bytesLeft to go ends at mbps, counted from
// now. ok is false when the rate is unknown (mbps <= 0) or the end is
// centuries away.
func CopyEnd(bytesLeft int64, mbps float64, now time.Time) (time.Time, bool) {
	if bytesLeft <= 0 {
		return now, true
	}
	if !(mbps > 0) {
		return time.Time{}, false
	}
	d, ok := seconds(float64(bytesLeft) / bytesPerSecond(mbps))
	if !ok {
		return time.Time{}, false
	}
	return now.Add(d), true
}

// SyncPass is one finished incremental pass: when it ended and how many
// bytes had changed since the previous pass (what it copied).
type SyncPass struct {
	End          time.Time `json:"end"`
	BytesChanged int64     `json:"bytes_changed"`
}

// Churn is a member's measured rate of change.
type Churn struct {
	// BytesPerHour changed on the source.
	BytesPerHour float64 `json:"bytes_per_hour"`
	// Interval is the mean time between pass ends: what a final pass at a
	// random moment has to catch up on at worst.
	Interval time.Duration `json:"interval_ns"`
}

// MeasureChurn reads the churn from passes (any order): the bytes changed
// in every pass but the earliest over the time from the earliest pass's end
// to the latest's. The earliest pass is left out because the time its
// bytes changed in is not known. ok is false with fewer than two passes or
// no time between them.
func MeasureChurn(passes []SyncPass) (Churn, bool) {
	if len(passes) < 2 {
		return Churn{}, false
	}
	ps := append([]SyncPass(nil), passes...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].End.Before(ps[j].End) })
	span := ps[len(ps)-1].End.Sub(ps[0].End)
	if span <= 0 {
		return Churn{}, false
	}
	var total float64
	for _, p := range ps[1:] {
		if p.BytesChanged > 0 {
			total += float64(p.BytesChanged)
		}
	}
	return Churn{
		BytesPerHour: total / span.Hours(),
		Interval:     span / time.Duration(len(ps)-1),
	}, true
}

// Converging tells whether a member's syncs can catch up: its churn stays
// below what its bandwidth moves in the same time. At or above that, every
// pass falls further behind and the final pass would never be short.
func Converging(c Churn, mbps float64) bool {
	if !(mbps > 0) {
		return true // unlimited and unmeasured: nothing says otherwise
	}
	return c.BytesPerHour < bytesPerSecond(mbps)*3600
}

// FinalPass estimates the final pass at cutover, the downtime: the bytes
// changed over one pass interval copied at mbps. Sources keep changing
// while a pass runs, so the catch-up is a geometric series: interval ×
// churn / (rate − churn) when the churn is below the rate. ok is false when
// it does not converge or the rate is unknown.
func FinalPass(c Churn, mbps float64) (time.Duration, bool) {
	if !(mbps > 0) || !Converging(c, mbps) {
		return 0, false
	}
	rate := bytesPerSecond(mbps) * 3600 // bytes an hour
	return seconds(c.Interval.Seconds() * c.BytesPerHour / (rate - c.BytesPerHour))
}

// MemberInput is what the estimates know of one member.
type MemberInput struct {
	ID string `json:"id"`
	// BytesLeft of its full copy (0 once it is syncing).
	BytesLeft int64 `json:"bytes_left"`
	// Mbps is the rate it moves at: its share of the budget, or its measured
	// speed when that is lower or the budget is unlimited.
	Mbps float64 `json:"mbps"`
	// Passes are its finished sync passes.
	Passes []SyncPass `json:"passes,omitempty"`
}

// MemberEstimate is what show and the report print for a member.
type MemberEstimate struct {
	ID string `json:"id"`
	// CopyEnd is the expected end of the full copy; nil when unknown.
	CopyEnd *time.Time `json:"copy_end,omitempty"`
	// ChurnBytesPerHour is the measured churn; nil before two passes.
	ChurnBytesPerHour *float64 `json:"churn_bytes_per_hour,omitempty"`
	// DowntimeSeconds is the expected final pass at cutover; nil when
	// unknown or not converging.
	DowntimeSeconds *float64 `json:"expected_downtime_seconds,omitempty"`
	NotConverging   bool     `json:"not_converging"`
}

// EstimateMember puts the estimates of one member together.
func EstimateMember(in MemberInput, now time.Time) MemberEstimate {
	e := MemberEstimate{ID: in.ID}
	if t, ok := CopyEnd(in.BytesLeft, in.Mbps, now); ok {
		e.CopyEnd = &t
	}
	if c, ok := MeasureChurn(in.Passes); ok {
		e.ChurnBytesPerHour = &c.BytesPerHour
		e.NotConverging = !Converging(c, in.Mbps)
		if d, ok := FinalPass(c, in.Mbps); ok {
			s := d.Seconds()
			e.DowntimeSeconds = &s
		}
	}
	return e
}

// CopyItem is a member still to copy, for the wave's simulation.
type CopyItem struct {
	ID        string `json:"id"`
	BytesLeft int64  `json:"bytes_left"`
	// Copying: it holds a slot now (it starts the simulation in the window).
	Copying bool `json:"copying"`
	// MaxMbps is the most it can move (its measured speed when it is slow;
	// 0 = only the budget limits it).
	MaxMbps float64 `json:"max_mbps"`
}

// maxSteps bounds the simulation's loop whatever the input.
const maxSteps = 1 << 20

// SimulateCopies estimates when each full copy ends and when the last
// does (the wave's copy ETA), playing the sliding window forward from now:
// the copying items first, then the others in the order given (start
// order, see OrderMembers) as slots free up, at most maxConcurrent at once
// (items already copying all count, even beyond it, as they do in the
// wave).
// The budget in force (BudgetAt, read in loc) is water-filled over the
// copying items capped at their MaxMbps, and recomputed at every window
// bound and every finish. With an unlimited budget an item moves at its
// MaxMbps. ends is in the order of items; an item whose rate is unknown
// (unlimited budget and no MaxMbps) or that would take longer than a
// century has no end (zero time), and then ok is false and waveEnd is zero.
func SimulateCopies(items []CopyItem, maxConcurrent int, b Budget, loc *time.Location, now time.Time) (ends []time.Time, waveEnd time.Time, ok bool) {
	ends = make([]time.Time, len(items))
	if maxConcurrent < 1 {
		maxConcurrent = 1
	}
	left := make([]float64, len(items))
	var active, queue []int
	for i, it := range items {
		left[i] = float64(max(it.BytesLeft, 0))
		if it.Copying {
			active = append(active, i)
		} else {
			queue = append(queue, i)
		}
	}
	horizon := now.AddDate(100, 0, 0)
	t := now
	ok = true
	fill := func() {
		for len(active) < maxConcurrent && len(queue) > 0 {
			active = append(active, queue[0])
			queue = queue[1:]
		}
	}
	fill()
	var budget int32
	var next time.Time
	var wf waterFiller
	for step := 0; len(active) > 0; step++ {
		// The budget holds until its next bound: it is read again only
		// there (a 1,000-member wave takes hundreds of steps, and reading
		// the windows in their zone was most of each).
		if step == 0 || (!next.IsZero() && !t.Before(next)) {
			budget, next = BudgetAt(b, loc, t)
		}
		rates := wf.fill(float64(budget), active, items)
		// Finish items with nothing left; find the first finish otherwise.
		dt := math.Inf(1)
		for k, i := range active {
			if left[i] <= 0 {
				dt = 0
				break
			}
			if rates[k] > 0 {
				dt = math.Min(dt, left[i]/bytesPerSecond(rates[k]))
			}
		}
		if !next.IsZero() {
			dt = math.Min(dt, next.Sub(t).Seconds())
		}
		d, fin := seconds(dt)
		if !fin || t.Add(d).After(horizon) || step >= maxSteps {
			// Nothing can be said about the rest.
			return ends, time.Time{}, false
		}
		t = t.Add(d)
		kept := active[:0]
		for k, i := range active {
			left[i] -= bytesPerSecond(rates[k]) * dt
			// A float remainder of under a byte is done.
			if left[i] < 1 {
				ends[i] = t
				if t.After(waveEnd) {
					waveEnd = t
				}
				continue
			}
			kept = append(kept, i)
		}
		active = kept
		fill()
	}
	if waveEnd.IsZero() {
		waveEnd = now
	}
	return ends, waveEnd, ok
}

// waterFiller splits budget (Mbit/s, 0 = unlimited) over the active
// items, each capped at its MaxMbps, max-min fair; rates are in active's
// order. Its buffers serve every step of a simulation.
type waterFiller struct {
	rates, caps []float64
	order       []int
}

func (w *waterFiller) fill(budget float64, active []int, items []CopyItem) []float64 {
	n := len(active)
	w.rates = slices.Grow(w.rates[:0], n)[:n]
	rates := w.rates
	if budget <= 0 {
		for k, i := range active {
			rates[k] = math.Max(items[i].MaxMbps, 0)
		}
		return rates
	}
	w.caps = slices.Grow(w.caps[:0], n)[:n]
	w.order = slices.Grow(w.order[:0], n)[:n]
	caps, order := w.caps, w.order
	capped := false
	for k, i := range active {
		order[k] = k
		caps[k] = math.Inf(1)
		if c := items[i].MaxMbps; c > 0 {
			caps[k], capped = c, true
		}
	}
	if capped { // uncapped items keep their order: the levels come out as before
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case caps[a] < caps[b]:
				return -1
			case caps[b] < caps[a]:
				return 1
			}
			return 0
		})
	}
	remaining, left := budget, float64(n)
	for _, k := range order {
		level := remaining / left
		r := math.Min(caps[k], level)
		rates[k] = r
		remaining -= r
		left--
	}
	return rates
}
