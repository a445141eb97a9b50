package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smsflow/smsflow/agent/blocksync"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/sms"
)

// copy runs one pass (START: full copy, resumed; SYNC: changes only), then
// verifies the target and reports the result, then reports 100 %.
func (r *Runner) copy(ctx context.Context, spec jobSpec) error {
	if spec.TargetAddr == "" {
		return fmt.Errorf("%w: the command names no target address", errNoTarget)
	}
	cert, key, pass, err := r.retryCreds(ctx, spec.TaskID)
	if err != nil {
		return fmt.Errorf("task credentials: %w", err)
	}
	creds := transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: pass}
	rep := newReporter(r, spec)
	defer rep.stop()

	// A link that breaks mid-pass (the target's receiver restarting with its
	// worker, a network blip, a partition) does not fail the command: the
	// pass runs again, the full copy from its last checkpoint, file passes
	// skipping what arrived, for as long as the link stays down less than
	// LinkRetryFor (counted from when it went down, not from the copy's
	// start: a long copy has the whole budget for each outage). Refusals and
	// source changes end it at once.
	down := &outage{limit: r.cfg.LinkRetryFor}
	b := newBackoff()
	for attempt := 1; ; attempt++ {
		err := r.pass(ctx, spec, creds, rep, down)
		if err == nil {
			return rep.finish(ctx)
		}
		if ctx.Err() != nil || !linkBroke(err) {
			return err
		}
		// The pass got through to the receiver before this break (its dial
		// ended the outage): the link was up, so the wait starts short
		// again. Kept growing, a link that flaps every minute would have
		// the agent idle for 30 s after each flap, a pass never finishing.
		if down.since.IsZero() {
			b.reset()
		}
		if down.begin(time.Now()); down.over(time.Now()) {
			return fmt.Errorf("%w: down for %v: %w", errUnreachable, r.cfg.LinkRetryFor, err)
		}
		r.log.Warn("the link to the target broke; running the pass again", "task", spec.TaskID,
			"command", spec.Command, "attempt", attempt, "err", err)
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

// outage tracks how long the link to the target has been down in a row: a
// connection that gets through ends it.
type outage struct {
	limit time.Duration
	since time.Time // zero: the link is up
}

func (o *outage) begin(now time.Time) {
	if o.since.IsZero() {
		o.since = now
	}
}

func (o *outage) end() { o.since = time.Time{} }

func (o *outage) over(now time.Time) bool {
	return !o.since.IsZero() && now.Sub(o.since) > o.limit
}

// linkBroke tells a connection that failed under the pass (reset, closed,
// timed out, cut short) from a refusal or a fault of the source.
func linkBroke(err error) bool {
	var re *transport.RemoteError
	var ne net.Error
	switch {
	case transport.IsStopping(err):
		return true // the receiver shut down with its worker: it comes back
	case errors.As(err, &re), errors.Is(err, blocksync.ErrDiskChanged), errors.Is(err, errUnreachable),
		errors.Is(err, transport.ErrAuth):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, net.ErrClosed),
		errors.As(err, &ne):
		return true
	case ackStopped(err):
		return true
	}
	return false
}

// ackStopped: blocksync's sender reports a connection that died under its
// ack reader without the reader's error (agent/blocksync drops it), so the
// message is all there is to tell it from a fault.
func ackStopped(err error) bool {
	m := err.Error()
	return strings.Contains(m, "blocksync: the receiver stopped acknowledging") ||
		strings.Contains(m, "blocksync: the receiver closed before acknowledging")
}

// pass is one attempt: copy, verify, report the verification.
func (r *Runner) pass(ctx context.Context, spec jobSpec, creds transport.Creds, rep *reporter, down *outage) error {
	file := spec.Type == sms.MigrateFile
	kind := transport.KindBlock
	if file {
		if r.cfg.Files == nil {
			return errors.New("this agent does not do file-level copies")
		}
		kind = transport.KindFile
	}
	conn, err := r.dial(ctx, spec.TargetAddr, creds, kind, down)
	if err != nil {
		return err
	}
	conn.SetLimiter(ctx, r.bucket(spec.TaskID))
	var results []smsapi.Consistency
	if file {
		raw, payload, err := r.cfg.Files.Send(ctx, conn, r.cfg.FileRoot, r.cfg.Excludes, func(done, total int64) {
			rep.update(done, total, conn.BytesSent(), 0)
		})
		conn.Close()
		if err != nil {
			return err
		}
		rep.setCompress(raw, payload)
		if !spec.verify() {
			return nil
		}
		vc, err := r.dial(ctx, spec.TargetAddr, creds, transport.KindVerify, down)
		if err != nil {
			return err
		}
		res, err := r.cfg.Files.Verify(ctx, vc, r.cfg.FileRoot, r.cfg.Excludes)
		vc.Close()
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		results = append(results, res)
	} else {
		disks, err := r.disks(spec)
		if err != nil {
			conn.Close()
			return err
		}
		st, err := blocksync.Send(ctx, conn, blocksync.Options{Disks: disks, Sync: spec.Command == sms.CmdSync, Resend: spec.Resend,
			StateDir: filepath.Join(r.taskDir(spec.TaskID), "blocks"),
			Progress: func(p blocksync.Progress) { rep.update(p.BytesDone, p.BytesTotal, p.WireSent, p.RawSent) }})
		conn.Close()
		if err != nil {
			return err
		}
		rep.setCompress(st.RawBytes, st.PayloadBytes)
		r.log.Info("pass done", "task", spec.TaskID, "command", spec.Command, "blocks", st.Blocks, "sent", st.Sent,
			"zero", st.Zero, "unchanged", st.Unchanged, "wire_bytes", st.WireBytes)
		if !spec.verify() {
			return nil
		}
		vc, err := r.dial(ctx, spec.TargetAddr, creds, transport.KindVerify, down)
		if err != nil {
			return err
		}
		checks, err := blocksync.Verify(ctx, vc, disks, 0)
		vc.Close()
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for _, c := range checks {
			results = append(results, smsapi.Consistency{DirCheck: c.Name, Total: int32(c.Blocks), Different: int32(c.Different)})
			if c.Different > 0 {
				// The next pass must not trust the recorded hashes: it
				// sends every block again.
				_ = os.RemoveAll(filepath.Join(r.taskDir(spec.TaskID), "blocks"))
				r.log.Error("target differs from source", "task", spec.TaskID, "disk", c.Name, "blocks", c.Different, "first", c.Offsets)
			}
		}
	}
	if err := r.cfg.API.ReportConsistency(ctx, spec.TaskID, results); err != nil {
		return fmt.Errorf("report consistency: %w", err)
	}
	return nil
}

var errNoTarget = errors.New("no target")

// disks maps the command's disks to what this machine reads.
func (r *Runner) disks(spec jobSpec) ([]blocksync.Disk, error) {
	out := make([]blocksync.Disk, len(spec.Disks))
	for i, d := range spec.Disks {
		if d.Index != i {
			return nil, fmt.Errorf("disk %s: index %d out of order", d.Name, d.Index)
		}
		path := d.Name
		if p, ok := r.cfg.DiskPaths[d.Name]; ok {
			path = p
		}
		size, err := sizeOf(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", blocksync.ErrDiskChanged, d.Name, err)
		}
		out[i] = blocksync.Disk{Name: d.Name, Path: path, Size: size}
	}
	return out, nil
}

// sizeOf is a file's or a block device's size.
func sizeOf(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

func (r *Runner) retryCreds(ctx context.Context, taskID string) (string, string, string, error) {
	b := newBackoff()
	start := time.Now()
	for {
		cert, key, pass, err := r.cfg.API.TaskCreds(ctx, taskID)
		if err == nil || !smsapi.IsTemporary(err) || time.Since(start) > r.cfg.LinkRetryFor {
			return cert, key, pass, err
		}
		if !b.wait(ctx) {
			return "", "", "", ctx.Err()
		}
	}
}

// dial reaches the receiver, retrying with backoff while the link has been
// down less than LinkRetryFor (the receiver may be restarting with its
// worker, the network partitioned). A refused passphrase or certificate is
// final at once.
func (r *Runner) dial(ctx context.Context, addr string, creds transport.Creds, kind transport.Kind, down *outage) (*transport.Conn, error) {
	b := newBackoff()
	for {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := transport.Dial(dctx, addr, creds, kind)
		cancel()
		if err == nil {
			down.end()
			return c, nil
		}
		if errors.Is(err, transport.ErrAuth) {
			return nil, fmt.Errorf("%w: %v", errUnreachable, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if down.begin(time.Now()); down.over(time.Now()) {
			return nil, fmt.Errorf("%w: down for %v: %v", errUnreachable, down.limit, err)
		}
		r.log.Warn("target unreachable; retrying", "addr", addr, "err", err)
		if !b.wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

var errUnreachable = errors.New("the target cannot be reached")

// classify gives a failure its SMS code for the command result.
func classify(err error) (code, msg string) {
	var re *transport.RemoteError
	switch {
	case errors.Is(err, blocksync.ErrDiskChanged):
		return "SMS.0515", err.Error()
	case errors.Is(err, errUnreachable):
		return "SMS.0807", err.Error()
	case errors.As(err, &re) && strings.Contains(re.Msg, "smaller than the source"):
		return "SMS.1311", err.Error()
	case errors.As(err, &re) && (strings.Contains(re.Msg, "no space left on device") || strings.Contains(re.Msg, "disk quota exceeded")):
		// The target filled up: the copy stopped there, nothing truncated.
		return "SMS.0519", err.Error()
	case errors.As(err, &re):
		return "SMS.0805", err.Error()
	}
	return "SMS.1801", err.Error()
}

// reporter sends progress every ProgressEvery, without holding up the copy.
type reporter struct {
	r    *Runner
	spec jobSpec

	mu                      sync.Mutex
	done, total, wire, raw  int64
	samples                 []wireSample // the wire counter at recent reports, oldest first
	start                   time.Time
	speed                   float64 // Mbit/s
	compressRaw, compressPl int64
	stopCh                  chan struct{}
	stopped                 chan struct{}
}

func newReporter(r *Runner, spec jobSpec) *reporter {
	now := time.Now()
	rp := &reporter{r: r, spec: spec, start: now, samples: []wireSample{{at: now}}, stopCh: make(chan struct{}), stopped: make(chan struct{})}
	go rp.loop()
	return rp
}

func (rp *reporter) update(done, total, wire, raw int64) {
	rp.mu.Lock()
	rp.done, rp.total, rp.wire, rp.raw = done, total, wire, raw
	rp.mu.Unlock()
}

func (rp *reporter) setCompress(raw, payload int64) {
	rp.mu.Lock()
	rp.compressRaw, rp.compressPl = raw, payload
	rp.mu.Unlock()
}

func (rp *reporter) loop() {
	defer close(rp.stopped)
	t := time.NewTicker(rp.r.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-rp.stopCh:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = rp.send(ctx, false)
			cancel()
		}
	}
}

// speedWindow is how far back the reported speed looks. A throttled copy
// moves in bursts (a chunk, then a wait for tokens), so over one report's
// interval it reads 0 or twice the limit; over a few seconds it reads the
// rate the server charts and compares with the limit.
const speedWindow = 5 * time.Second

// wireSample is the wire byte counter at one report.
type wireSample struct {
	at   time.Time
	wire int64
}

// measure updates rp.speed from the wire counter at now: bytes since the
// newest sample at least speedWindow old (or the oldest there is).
func (rp *reporter) measure(now time.Time) {
	if len(rp.samples) == 0 {
		rp.samples = append(rp.samples, wireSample{at: rp.start})
	}
	if last := rp.samples[len(rp.samples)-1]; rp.wire < last.wire {
		// A new connection (the link broke): its counter starts at zero.
		rp.samples = append(rp.samples[:0], wireSample{at: last.at})
	}
	for len(rp.samples) > 1 && !rp.samples[1].at.After(now.Add(-speedWindow)) {
		rp.samples = rp.samples[1:]
	}
	base := rp.samples[0]
	if dt := now.Sub(base.at).Seconds(); dt > 0.2 {
		rp.speed = float64(rp.wire-base.wire) * 8 / 1e6 / dt
	}
	if len(rp.samples) >= 64 { // reports come faster than planned: keep it small
		rp.samples = rp.samples[1:]
	}
	rp.samples = append(rp.samples, wireSample{at: now, wire: rp.wire})
}

// report builds the progress report; final reports 100 %.
func (rp *reporter) report(final bool) smsapi.Progress {
	return rp.reportAt(time.Now(), final)
}

func (rp *reporter) reportAt(now time.Time, final bool) smsapi.Progress {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.measure(now)
	p := smsapi.Progress{Subtask: rp.spec.Subtask, Replicatesize: rp.done, Totalsize: rp.total,
		MigrateSpeed: rp.speed, AgentTime: now.UTC().Format(time.RFC3339), CompressRate: 100}
	if rp.total > 0 {
		p.Progress = int32(min(rp.done*100/rp.total, 99))
	}
	if rp.speed > 0 && rp.total > rp.done {
		p.RemainTime = int64(float64(rp.total-rp.done) * 8 / 1e6 / rp.speed)
	}
	if rp.compressPl > 0 {
		p.CompressRate = min(float64(rp.compressRaw)/float64(rp.compressPl)*100, 10000)
	}
	if final {
		p.Progress, p.Replicatesize, p.RemainTime = 100, rp.total, 0
	}
	p.ProcessTrace = fmt.Sprintf("%s %d%%", rp.spec.Command, p.Progress)
	if rp.r.cfg.Usage != nil {
		u := rp.r.cfg.Usage()
		p.TotalCPU, p.AgentCPU, p.TotalMem, p.AgentMem, p.TotalDiskIO, p.AgentDiskIO =
			u.TotalCPU, u.AgentCPU, u.TotalMem, u.AgentMem, u.TotalDiskIO, u.AgentDiskIO
	}
	return p
}

func (rp *reporter) send(ctx context.Context, final bool) error {
	return rp.r.cfg.API.ReportProgress(ctx, rp.spec.TaskID, rp.report(final))
}

func (rp *reporter) stop() {
	select {
	case <-rp.stopCh:
	default:
		close(rp.stopCh)
	}
	<-rp.stopped
}

// finish stops the periodic reports and sends 100 %, retrying: it is what
// moves the workflow on.
func (rp *reporter) finish(ctx context.Context) error {
	rp.stop()
	b := newBackoff()
	start := time.Now()
	for {
		err := rp.send(ctx, true)
		if err == nil || !smsapi.IsTemporary(err) || time.Since(start) > rp.r.cfg.LinkRetryFor {
			return err
		}
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}
