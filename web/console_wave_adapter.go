package web

import (
	"context"
	"time"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/web/console"
)

// consoleWaves runs the console's wave pages through the wave API's own
// methods (createWave, updateWave, csvMembers, runAction, ...): a form and
// a JSON call follow the same rules, reach the same engine and answer the
// same SMS codes.
type consoleWaves struct{ h waveHandlers }

var _ console.Waves = consoleWaves{}

// load reads the tenant's wave; another domain's is a 404 wave error.
func (a consoleWaves) load(ctx context.Context, t store.Tenant, id string) (*store.Wave, error) {
	w, err := a.h.store.Wave(ctx, t, id)
	if err != nil {
		return nil, waveError(err, id)
	}
	return w, nil
}

func (a consoleWaves) Wave(ctx context.Context, p iam.Principal, id string) (*store.Wave, error) {
	return a.load(ctx, p.Tenant(), id)
}

func (a consoleWaves) CreateWave(ctx context.Context, p iam.Principal, spec wave.Spec, csv []byte) (string, error) {
	t := p.Tenant()
	var extra []store.WaveMember
	if csv != nil {
		// The file's rows are checked (and their lines named) before
		// anything is made: all of the form or nothing.
		if ps := wave.Validate(spec, a.h.now()); len(ps) > 0 {
			return "", wave.ProblemsError(ps)
		}
		ms, err := a.h.csvMembers(ctx, t, "", csv, wave.MaxMembers-len(spec.Members))
		if err != nil {
			return "", err
		}
		extra = ms
	}
	id, n, err := a.h.createWave(ctx, t, spec, extra)
	if err != nil {
		return "", err
	}
	a.h.log.InfoContext(ctx, "wave created", "wave", id, "members", n, "via", "console")
	return id, nil
}

func (a consoleWaves) UpdateWave(ctx context.Context, p iam.Principal, id string, spec wave.Spec) error {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return err
	}
	return a.h.updateWave(ctx, t, w, func(cur *wave.Spec) error {
		spec.Members = cur.Members
		*cur = spec
		return nil
	})
}

func (a consoleWaves) DeleteWave(ctx context.Context, p iam.Principal, id string) error {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return err
	}
	if err := a.h.deleteWave(ctx, t, w); err != nil {
		return err
	}
	a.h.log.InfoContext(ctx, "wave deleted", "wave", id, "via", "console")
	return nil
}

func (a consoleWaves) AddWaveMembers(ctx context.Context, p iam.Principal, id string, sourceIDs []string, csv []byte) (int, error) {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return 0, err
	}
	var ms []store.WaveMember
	if len(sourceIDs) > 0 {
		members := make([]wave.Member, len(sourceIDs))
		for i, s := range sourceIDs {
			members[i] = wave.Member{SourceID: s}
		}
		if ms, err = a.h.resolveJSON(ctx, t, w.ID, members); err != nil {
			return 0, err
		}
	}
	if csv != nil {
		more, err := a.h.csvMembers(ctx, t, w.ID, csv, wave.MaxMembers-w.MemberCount-len(ms))
		if err != nil {
			return 0, err
		}
		ms = append(ms, more...)
	}
	ids, err := a.h.addResolved(ctx, t, w, ms)
	return len(ids), err
}

func (a consoleWaves) WaveAction(ctx context.Context, p iam.Principal, id string, op wave.Action) error {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return err
	}
	if err := a.h.runAction(ctx, t, w, op); err != nil {
		return err
	}
	a.h.log.InfoContext(ctx, "wave action", "wave", id, "operation", op, "via", "console")
	return nil
}

func (a consoleWaves) WavePreflight(ctx context.Context, p iam.Principal, id string) (*console.WavePreflight, error) {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return nil, err
	}
	r, err := a.h.runPreflight(ctx, t, w)
	if err != nil {
		return nil, waveError(err, id)
	}
	out := &console.WavePreflight{OK: r.OK, Blocking: r.Blocking}
	for _, c := range r.Wave {
		out.Wave = append(out.Wave, console.PreflightCheck(c))
	}
	for _, m := range r.Members {
		pm := console.PreflightMember{ID: m.ID, SourceID: m.SourceID, Name: m.Name, OK: m.OK}
		for _, c := range m.Checks {
			pm.Checks = append(pm.Checks, console.PreflightCheck(c))
		}
		out.Members = append(out.Members, pm)
	}
	return out, nil
}

func (a consoleWaves) WaveDetail(ctx context.Context, p iam.Principal, id string) (*console.WaveDetail, error) {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return nil, err
	}
	vs, err := a.h.view(ctx, t, w, false)
	if err != nil {
		return nil, waveError(err, id)
	}
	d := &console.WaveDetail{Wave: w, Members: make([]console.WaveMember, len(vs))}
	if a.h.engine != nil && w.State.Running() {
		d.RunURL = a.h.engine.WaveRunURL(w.ID)
	}
	for i, v := range vs {
		j := v.json()
		m := console.WaveMember{ID: j.ID, SourceID: j.SourceID, SourceName: j.SourceName, TargetName: j.TargetName,
			State: j.State, FailedFrom: j.FailedFrom, Percent: j.Percent, BytesDone: j.BytesDone, BytesTotal: j.BytesTotal,
			SpeedMbps: j.SpeedMbps, ShareMbps: j.ShareMbps, ETA: v.est.CopyEnd, ExpectedDowntime: j.ExpectedDowntime,
			Downtime: j.DowntimeSeconds, NotConverging: j.NotConverging, ErrorCode: j.ErrorCode, ErrorMsg: j.ErrorMsg}
		if j.TaskID != nil {
			m.TaskID = *j.TaskID
		}
		d.Members[i] = m
	}
	tot := a.h.totals(w, vs)
	d.Totals = console.WaveTotals{BytesDone: tot["bytes_done"].(int64), BytesTotal: tot["bytes_total"].(int64),
		Percent: tot["percent"].(float64), NotConverging: tot["not_converging"].(int)}
	if s, ok := tot["copy_eta"].(string); ok {
		if at, err := time.Parse(time.RFC3339, s); err == nil {
			d.Totals.CopyETA = &at
		}
	}
	if dt, ok := tot["expected_downtime_seconds"].(*float64); ok {
		d.Totals.ExpectedDowntime = dt
	}
	return d, nil
}

func (a consoleWaves) WaveReport(ctx context.Context, p iam.Principal, id string) (*console.WaveReport, error) {
	t := p.Tenant()
	w, err := a.load(ctx, t, id)
	if err != nil {
		return nil, err
	}
	rows, _, err := a.h.reportRows(ctx, t, w)
	if err != nil {
		return nil, waveError(err, id)
	}
	out := &console.WaveReport{Rows: make([]console.WaveReportRow, len(rows)), CSV: reportCSV(rows)}
	for i, r := range rows {
		out.Rows[i] = console.WaveReportRow(r)
	}
	return out, nil
}

func (a consoleWaves) WaveThroughput(ctx context.Context, p iam.Principal, id string, sinceMs, bucketMs int64) ([]store.ThroughputPoint, error) {
	t := p.Tenant()
	if _, err := a.load(ctx, t, id); err != nil {
		return nil, err
	}
	return a.h.store.WaveThroughput(ctx, t, id, sinceMs, bucketMs)
}
