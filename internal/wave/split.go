package wave

import (
	"math"
	"sort"
)

// MinShareMbps is the least a copying member is given under a limited
// budget. A share is never 0 there: 0 means "no limit" in the speed-limit
// path (a task's speed_limit, the agent's SPEED_LIMIT command).
const MinShareMbps = 1

// Headroom is how much above its measured speed a slow member is offered,
// so that a member that speeds up again can show it (its share then grows
// at the next split).
const Headroom = 1.25

// SlowFraction: a member that moved less than this part of its share is
// slow (held back by its disk, CPU or link, not by the budget).
const SlowFraction = 0.8

// Demand is what Split knows of one copying member.
type Demand struct {
	ID string `json:"id"`
	// MeasuredMbps is its recent speed (the agent's migrate_speed).
	MeasuredMbps float64 `json:"measured_mbps"`
	// Idle: it is not sending (between disks, waiting on its receiver).
	Idle bool `json:"idle"`
	// Slow: it sends less than its share allows (see IsSlow).
	Slow bool `json:"slow"`
}

// Share is one member's limit in Mbit/s; 0 means no limit.
type Share struct {
	ID   string `json:"id"`
	Mbps int32  `json:"mbps"`
}

// IsSlow tells whether a member measured at mbps under a limit of share
// leaves bandwidth unused: it moved under SlowFraction of its share.
func IsSlow(mbps float64, share int32) bool {
	return share > 0 && mbps < SlowFraction*float64(share)
}

// Split divides budgetMbps among the members by max-min fairness (water
// filling). An idle member asks for MinShareMbps and a slow one for
// Headroom × its measured speed (at least MinShareMbps); such a member gets
// what it asks up to the fair level, and the others share the rest
// equally. The shares are whole Mbit/s and sum to the budget exactly: the
// remainder of each equal split goes one Mbit/s at a time to the members in
// ID order, and when every member is idle or slow and all are satisfied,
// the budget left over is spread the same way over all of them rather than
// left unused. The result is in the order of members, and does not depend on
// that order (IDs should be unique).
//
// A budget of 0 is unlimited: every share is 0. A budget below
// MinShareMbps × len(members) cannot be split without a share of 0 (no
// limit!): each member then gets MinShareMbps and the sum exceeds the
// budget. Validate refuses budgets below max_concurrent Mbit/s so a wave
// never asks that.
func Split(budgetMbps int32, members []Demand) []Share {
	n := len(members)
	out := make([]Share, n)
	for i, m := range members {
		out[i].ID = m.ID
	}
	if n == 0 || budgetMbps <= 0 {
		return out
	}
	if int64(budgetMbps) < int64(n)*MinShareMbps {
		for i := range out {
			out[i].Mbps = MinShareMbps
		}
		return out
	}
	// order: members by ID (then input position, for duplicate IDs).
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return members[order[a]].ID < members[order[b]].ID })

	want := make([]int64, n) // 0: takes whatever the fair level is
	for i, m := range members {
		switch {
		case m.Idle:
			want[i] = MinShareMbps
		case m.Slow:
			w := math.Ceil(m.MeasuredMbps * Headroom)
			if !(w >= MinShareMbps) { // NaN and negatives too
				w = MinShareMbps
			}
			if w > float64(budgetMbps) {
				w = float64(budgetMbps)
			}
			want[i] = int64(w)
		}
	}
	bounded := make([]int, 0, n)
	for _, i := range order {
		if want[i] > 0 {
			bounded = append(bounded, i)
		}
	}
	sort.SliceStable(bounded, func(a, b int) bool { return want[bounded[a]] < want[bounded[b]] })

	remaining, left := int64(budgetMbps), int64(n)
	given := make([]bool, n)
	for _, i := range bounded {
		if want[i] > remaining/left {
			break // it and every larger demand share the level with the rest
		}
		out[i].Mbps = int32(want[i])
		given[i] = true
		remaining -= want[i]
		left--
	}
	var rest []int
	for _, i := range order {
		if !given[i] {
			rest = append(rest, i)
		}
	}
	if len(rest) == 0 {
		rest = order // everyone satisfied: spread what is left over all
	}
	base, extra := remaining/int64(len(rest)), remaining%int64(len(rest))
	for k, i := range rest {
		add := base
		if int64(k) < extra {
			add++
		}
		out[i].Mbps += int32(add)
	}
	return out
}
