package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/smsflow/smsflow/internal/store"
)

// chartPoints bounds the samples a chart draws: the live fragment stays a
// few KB whatever the task's age.
const chartPoints = 120

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 640.0, 150.0
	padL, padB     = 44.0, 20.0
)

// speedChart draws a task's speed over its life (Mbit/s) with the limit in
// force as a dashed step line, as inline SVG: no chart library, no script.
// Nothing here comes from the user but numbers.
func speedChart(samples []store.SpeedSample) template.HTML {
	if len(samples) == 0 {
		return template.HTML(`<p class="empty">No speed samples yet: they come with the agent's progress reports.</p>`)
	}
	top := 1.0
	for _, s := range samples {
		top = max(top, s.Mbps, float64(s.LimitMbps))
	}
	top *= 1.1
	t0, t1 := samples[0].AtMs, samples[len(samples)-1].AtMs
	span := max(t1-t0, 1)
	x := func(at int64) float64 { return padL + (chartW-padL)*float64(at-t0)/float64(span) }
	y := func(v float64) float64 { return (chartH - padB) * (1 - v/top) }
	var speed, limit strings.Builder
	// The limit is a step line: a point where it changes, and at the end.
	prev := int32(0)
	for i, s := range samples {
		fmt.Fprintf(&speed, "%.0f,%.0f ", x(s.AtMs), y(s.Mbps))
		if i == 0 || s.LimitMbps != prev {
			if prev > 0 {
				fmt.Fprintf(&limit, "%.0f,%.0f ", x(s.AtMs), y(float64(prev)))
			}
			if s.LimitMbps > 0 {
				fmt.Fprintf(&limit, "%.0f,%.0f ", x(s.AtMs), y(float64(s.LimitMbps)))
			}
			prev = s.LimitMbps
		}
	}
	if prev > 0 {
		fmt.Fprintf(&limit, "%.0f,%.0f ", x(t1), y(float64(prev)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="speed over the task's life, Mbit/s">`, chartW, chartH)
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, padL, chartH-padB, chartW, chartH-padB)
	fmt.Fprintf(&b, `<text x="%.0f" y="12" class="tick" text-anchor="end">%.0f</text>`, padL-6, top)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick" text-anchor="end">0</text>`, padL-6, chartH-padB)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick">%s ago</text>`, padL, chartH-4, time.Duration(span*int64(time.Millisecond)).Round(time.Second))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick" text-anchor="end">now</text>`, chartW, chartH-4)
	if limit.Len() > 0 {
		fmt.Fprintf(&b, `<polyline class="limit" points="%s"/>`, strings.TrimSpace(limit.String()))
	}
	fmt.Fprintf(&b, `<polyline class="speed" points="%s"/>`, strings.TrimSpace(speed.String()))
	b.WriteString(`</svg><p class="legend"><span class="k speed"></span>Mbit/s <span class="k limit"></span>speed limit</p>`)
	return template.HTML(b.String()) //nolint:gosec // numbers only, formatted above
}
