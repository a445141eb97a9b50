// Package runner is the agent's main loop: register the machine, long-poll
// commands, run copies in the background while polling goes on (so STOP and
// SPEED_LIMIT arrive mid-copy), report progress and results, and ride out
// server restarts and network errors with backoff. A copy in flight is
// recorded on disk (job.json) so a restarted agent resumes it without
// waiting for the server to hand the command out again.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/agent/throttle"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/sms"
)

// Config is what the runner needs.
type Config struct {
	API *smsapi.Client
	// Discover returns the registration body (POST /v3/sources).
	Discover func(ctx context.Context) (any, error)
	// DiskPaths maps a disk's registered name to what is read (an image
	// file standing in for it); other disks are read at their name.
	DiskPaths map[string]string
	// File-level copies: the tree's root ("/" in production) and what to
	// skip.
	FileRoot string
	Excludes []string
	Files    FilePlane // nil: file-level copies are refused
	StateDir string
	// PollWait is the long-poll wait (default 30 s; shortened below half
	// the server's agent_timeout_seconds, so a waiting agent never reads
	// disconnected); ProgressEvery how often progress is reported (default
	// 3 s).
	PollWait      time.Duration
	ProgressEvery time.Duration
	// LinkRetryFor is how long a copy rides out a link that is down (the
	// target's receiver or the API unreachable) before its command fails;
	// counted from when the link went down (default 30 min).
	LinkRetryFor time.Duration
	// Usage samples host and agent CPU, memory and disk I/O (optional).
	Usage  func() Usage
	Logger *slog.Logger
	// NetworkCheck shapes the NETWORK_CHECK measurement (zero: defaults).
	NetworkCheck netcheck.Options
	// Logs returns the newest part of the agent's log (UPLOAD_LOG); nil:
	// uploads are refused.
	Logs func() []byte
}

// Usage is the resource figures of a progress report.
type Usage struct {
	TotalCPU, AgentCPU, TotalMem, AgentMem, TotalDiskIO, AgentDiskIO float64
	TotalMemPercent                                                  float64 // for network checks
}

// FilePlane runs file-level passes (agent/filesync).
type FilePlane interface {
	Send(ctx context.Context, c *transport.Conn, root string, excludes []string, progress func(done, total int64)) (raw, payload int64, err error)
	Verify(ctx context.Context, c *transport.Conn, root string, excludes []string) (smsapi.Consistency, error)
}

// Runner is a running agent.
type Runner struct {
	cfg      Config
	log      *slog.Logger
	sourceID atomic.Pointer[string] // set once registered; read by others

	pollWait time.Duration // PollWait fitted to the server; Run's alone

	mu sync.Mutex
	// jobs are the copy commands running or waiting, by command identity
	// (jobKey): a command handed out again is recognised as the one
	// running, a new command of the same name is not.
	jobs map[string]*job
	// tail is each task's newest job: a new copy command of the task runs
	// after it (same name) or stops it (another name).
	tail    map[string]*job
	buckets map[string]*throttle.Bucket
	wg      sync.WaitGroup
}

type job struct {
	key    string
	spec   jobSpec
	cancel context.CancelFunc
	done   chan struct{}
}

// jobKey is a copy command's identity: its command_id, or for a server
// that sends none, its task and name (the best there is).
func jobKey(spec jobSpec) string {
	if spec.CommandID != "" {
		return "id:" + spec.CommandID
	}
	return "task:" + spec.TaskID + "/" + string(spec.Command)
}

// jobSpec is a copy command as received (and as recorded in job.json).
type jobSpec struct {
	Command    sms.Command  `json:"command"`
	CommandID  string       `json:"command_id,omitempty"` // the server's id of the command
	TaskID     string       `json:"task_id"`
	Subtask    sms.Subtask  `json:"subtask"`
	Type       sms.TaskType `json:"migrate_type"`
	SpeedLimit int32        `json:"speed_limit"`
	TargetAddr string       `json:"target_addr"`
	Disks      []diskSpec   `json:"disks"`
	// ConsistencyCheck false: the task asked for no consistency check, so
	// the pass ends without verifying the target (absent: verify, as
	// servers that do not send it expect).
	ConsistencyCheck *bool `json:"consistency_check,omitempty"`
	// Resend: the target was rolled back to a snapshot, so a block pass
	// sends every block again instead of trusting the recorded hashes.
	Resend bool `json:"resend,omitempty"`
}

// verify tells whether the pass verifies the target afterwards.
func (s jobSpec) verify() bool { return s.ConsistencyCheck == nil || *s.ConsistencyCheck }

type diskSpec struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Size  int64  `json:"size"` // the target disk's size
}

// New prepares a runner.
func New(cfg Config) *Runner {
	if cfg.PollWait <= 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 3 * time.Second
	}
	if cfg.FileRoot == "" {
		cfg.FileRoot = "/"
	}
	if cfg.LinkRetryFor <= 0 {
		cfg.LinkRetryFor = 30 * time.Minute
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Runner{cfg: cfg, log: l, pollWait: cfg.PollWait, jobs: map[string]*job{}, tail: map[string]*job{},
		buckets: map[string]*throttle.Bucket{}}
}

// fitPollWait reads the server's agent timeout and keeps the long-poll wait
// under half of it: the server stamps a visit when a poll starts and when
// it ends, so two stamps always fall within one timeout.
func (r *Runner) fitPollWait(ctx context.Context) {
	timeout, err := r.cfg.API.AgentTimeout(ctx)
	if err != nil || timeout <= 0 {
		if err != nil {
			r.log.Warn("server configuration not read; keeping the poll wait", "wait", r.pollWait, "err", err)
		}
		return
	}
	w := r.cfg.PollWait
	if limit := timeout/2 - time.Second; w >= timeout/2 {
		w = max(limit, time.Second)
	}
	if w != r.pollWait {
		r.log.Info("poll wait fitted to the server's agent timeout", "wait", w, "agent_timeout", timeout)
	}
	r.pollWait = w
}

// SourceID is the id the server gave this machine (after Run registered).
func (r *Runner) SourceID() string {
	if p := r.sourceID.Load(); p != nil {
		return *p
	}
	return ""
}

// Run registers and serves commands until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("agent: state dir: %w", err)
	}
	if err := r.register(ctx); err != nil {
		return err
	}
	r.fitPollWait(ctx)
	r.resumeJobs(ctx)
	defer r.wg.Wait()
	defer r.stopAll()
	backoff := newBackoff()
	refit := false
	for ctx.Err() == nil {
		cmd, err := r.cfg.API.NextCommand(ctx, r.SourceID(), r.pollWait)
		if err != nil {
			refit = true // the server may come back with another timeout
			if ctx.Err() != nil {
				break
			}
			var ae *smsapi.APIError
			if errors.As(err, &ae) && !ae.Temporary() && ae.Status != 404 {
				r.log.Error("polling refused", "err", err)
			} else {
				r.log.Warn("polling failed; retrying", "err", err)
			}
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		if refit {
			refit = false
			r.fitPollWait(ctx)
		}
		if cmd.Name == "" {
			continue
		}
		r.handle(ctx, cmd)
	}
	return nil
}

// register discovers the machine and registers it, retrying until the
// server answers.
func (r *Runner) register(ctx context.Context) error {
	b := newBackoff()
	for {
		body, err := r.cfg.Discover(ctx)
		if err != nil {
			return fmt.Errorf("agent: discovery: %w", err)
		}
		id, err := r.cfg.API.Register(ctx, body)
		if err == nil {
			if err := r.cfg.API.SignPrivacy(ctx); err != nil {
				r.log.Warn("privacy agreement not signed", "err", err)
			}
			// Published last: a known source id means registration is done.
			r.sourceID.Store(&id)
			r.log.Info("registered", "source", id)
			return nil
		}
		if !smsapi.IsTemporary(err) {
			return fmt.Errorf("agent: register: %w", err)
		}
		r.log.Warn("register failed; retrying", "err", err)
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

func (r *Runner) handle(ctx context.Context, cmd smsapi.Command) {
	var p struct {
		jobSpec
		OverSpeedThreshold float64 `json:"over_speed_threshold"`
		Bucket             string  `json:"bucket"` // UPLOAD_LOG
	}
	if len(cmd.Param) > 0 {
		if err := json.Unmarshal(cmd.Param, &p); err != nil {
			r.result(ctx, cmd.ID, cmd.Name, sms.ResultFail, "SMS.6004", "bad command parameters: "+err.Error())
			return
		}
	}
	spec := p.jobSpec
	spec.Command, spec.CommandID = cmd.Name, cmd.ID
	// The task id names a folder of the state dir: nothing else than an id
	// ("..", "/") may reach the file system, whoever sent it.
	if spec.TaskID != "" && !taskIDPattern.MatchString(spec.TaskID) {
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultFail, "SMS.6004", fmt.Sprintf("bad task id %q", spec.TaskID))
		return
	}
	// These act on one task: without its id they would act on the state
	// dir's root and ask the server about no task.
	if spec.TaskID == "" && taskCommands[cmd.Name] {
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultFail, "SMS.6004", string(cmd.Name)+" names no task")
		return
	}
	log := r.log.With("command", cmd.Name, "task", spec.TaskID, "command_id", cmd.ID)
	switch cmd.Name {
	case sms.CmdStart, sms.CmdSync:
		if r.running(jobKey(spec)) {
			log.Info("command handed out again while it runs; carrying on")
			return
		}
		r.bucket(spec.TaskID).Set(spec.SpeedLimit)
		r.startJob(ctx, spec)
	case sms.CmdSpeedLimit:
		r.bucket(spec.TaskID).Set(spec.SpeedLimit)
		log.Info("speed limit set", "mbps", spec.SpeedLimit)
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultSuccess, "", "")
	case sms.CmdStop:
		r.stopJob(spec.TaskID)
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultSuccess, "", "")
	case sms.CmdDelete:
		r.stopJob(spec.TaskID)
		// The task is gone for good: its bucket would stay in the map for
		// the agent's life, one per task ever migrated from this host.
		r.dropBucket(spec.TaskID)
		if spec.TaskID != "" {
			_ = os.RemoveAll(r.taskDir(spec.TaskID))
		}
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultSuccess, "", "")
	case sms.CmdNetworkCheck:
		// Several seconds of measuring: the polling goes on meanwhile.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.networkCheck(ctx, spec)
		}()
	case sms.CmdUploadLog:
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.uploadLog(ctx, cmd.ID, spec.TaskID, p.Bucket)
		}()
	case sms.CmdResetLogACL:
		// The hosted service has the agent revoke the access it granted to
		// the log bucket after an upload. Here logs go to the server over the
		// agent's own signed calls: no grant was made, so none is left open.
		log.Info("log ACL reset: nothing granted to revoke")
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultSuccess, "", "")
	default:
		log.Warn("unknown command")
		r.result(ctx, cmd.ID, cmd.Name, sms.ResultFail, "SMS.6004", "unknown command "+string(cmd.Name))
	}
}

// uploadLog sends the log the agent keeps in memory to the server, where
// the operator downloads it (GET /v3/tasks/{id}/agent-log).
func (r *Runner) uploadLog(ctx context.Context, cmdID, taskID, bucket string) {
	if r.cfg.Logs == nil {
		r.result(ctx, cmdID, sms.CmdUploadLog, sms.ResultFail, "SMS.7707", "this agent keeps no log to upload")
		return
	}
	text := r.cfg.Logs()
	if len(text) == 0 {
		text = []byte("[sms-agent: the log is empty]\n")
	}
	if err := r.cfg.API.UploadLog(ctx, taskID, bucket, text); err != nil {
		r.log.Warn("log upload failed", "task", taskID, "err", err)
		r.result(ctx, cmdID, sms.CmdUploadLog, sms.ResultFail, "SMS.1801", "upload the log: "+err.Error())
		return
	}
	r.log.Info("log uploaded", "task", taskID, "bytes", len(text))
	r.result(ctx, cmdID, sms.CmdUploadLog, sms.ResultSuccess, "", "")
}

var taskCommands = map[sms.Command]bool{sms.CmdStart: true, sms.CmdSync: true, sms.CmdStop: true, sms.CmdDelete: true,
	sms.CmdSpeedLimit: true, sms.CmdNetworkCheck: true, sms.CmdUploadLog: true}

var taskIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// result reports a command's result, retrying while the server is out of
// reach (up to LinkRetryFor): a result lost means the command is handed out
// again and run again.
func (r *Runner) result(ctx context.Context, id string, name sms.Command, result sms.CommandResult, code, msg string) {
	detail := map[string]string{}
	if code != "" {
		detail["error_code"] = code
	}
	if msg != "" {
		detail["msg"] = msg
	}
	b := newBackoff()
	start := time.Now()
	for {
		err := r.cfg.API.CommandResult(ctx, r.SourceID(), id, name, result, detail)
		if err == nil || !smsapi.IsTemporary(err) {
			if err != nil {
				r.log.Warn("command result refused", "command", name, "command_id", id, "err", err)
			}
			return
		}
		if time.Since(start) > r.cfg.LinkRetryFor || !b.wait(ctx) {
			r.log.Error("command result not delivered", "command", name, "result", result, "err", err)
			return
		}
	}
}

// bucket is the task's speed bucket, made unlimited at first use; its
// copies and network checks share it, so a SPEED_LIMIT reaches them all.
func (r *Runner) bucket(taskID string) *throttle.Bucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets[taskID]
	if !ok {
		b = throttle.New(0)
		r.buckets[taskID] = b
	}
	return b
}

// dropBucket forgets the task's speed bucket (DELETE, after its jobs
// ended); a network check still running keeps the one it holds.
func (r *Runner) dropBucket(taskID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.buckets, taskID)
}

// running tells whether the command (by jobKey) runs or waits its turn.
func (r *Runner) running(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[key]
	if !ok {
		return false
	}
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

func (r *Runner) taskDir(taskID string) string {
	return filepath.Join(r.cfg.StateDir, "tasks", filepath.Base(taskID))
}

// startJob runs a copy in the background; its command's result is sent when
// it ends. A task copies one pass at a time: a new command of the same name
// (a SYNC queued while the previous SYNC finishes) runs as soon as the
// task's current job ends; a command of another name (START after SYNC)
// supersedes it.
func (r *Runner) startJob(ctx context.Context, spec jobSpec) {
	jctx, cancel := context.WithCancel(ctx)
	j := &job{key: jobKey(spec), spec: spec, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	prev := r.tail[spec.TaskID]
	r.jobs[j.key], r.tail[spec.TaskID] = j, j
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			if r.jobs[j.key] == j {
				delete(r.jobs, j.key)
			}
			if r.tail[spec.TaskID] == j {
				delete(r.tail, spec.TaskID)
			}
			r.mu.Unlock()
			close(j.done)
		}()
		if prev != nil {
			if prev.spec.Command != spec.Command {
				prev.cancel()
			} else {
				r.log.Info("command queued behind the task's running pass", "task", spec.TaskID,
					"command", spec.Command, "command_id", spec.CommandID)
			}
			select {
			case <-prev.done:
			case <-jctx.Done():
				return // stopped before its turn: the server hands it out again
			}
		}
		// When a pass really starts (after any pass it was queued behind):
		// the measure of how soon a command is acted on.
		r.log.Info("pass started", "task", spec.TaskID, "command", spec.Command, "command_id", spec.CommandID)
		if err := os.MkdirAll(r.taskDir(spec.TaskID), 0o700); err == nil {
			b, _ := json.Marshal(spec)
			_ = writeFileAtomic(filepath.Join(r.taskDir(spec.TaskID), "job.json"), b)
		}
		err := r.copy(jctx, spec)
		switch {
		case err == nil:
			_ = os.Remove(filepath.Join(r.taskDir(spec.TaskID), "job.json"))
			r.result(ctx, spec.CommandID, spec.Command, sms.ResultSuccess, "", "")
		case jctx.Err() != nil:
			// Stopped (STOP, DELETE or shutdown): the job file stays for a
			// shutdown, so a restarted agent resumes; STOP and DELETE
			// remove it.
		default:
			_ = os.Remove(filepath.Join(r.taskDir(spec.TaskID), "job.json"))
			code, msg := classify(err)
			r.log.Error("copy failed", "task", spec.TaskID, "command", spec.Command, "err", err)
			r.result(ctx, spec.CommandID, spec.Command, sms.ResultFail, code, msg)
		}
	}()
}

// stopJob stops the task's jobs, running and waiting (STOP, DELETE).
func (r *Runner) stopJob(taskID string) {
	r.mu.Lock()
	var js []*job
	for k, j := range r.jobs {
		if j.spec.TaskID == taskID {
			js = append(js, j)
			delete(r.jobs, k)
		}
	}
	delete(r.tail, taskID)
	r.mu.Unlock()
	for _, j := range js {
		j.cancel()
	}
	for _, j := range js {
		<-j.done
	}
	if len(js) > 0 {
		_ = os.Remove(filepath.Join(r.taskDir(taskID), "job.json"))
	}
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	js := r.jobs
	r.jobs, r.tail = map[string]*job{}, map[string]*job{}
	r.mu.Unlock()
	for _, j := range js {
		j.cancel()
	}
	for _, j := range js {
		<-j.done
	}
}

// resumeJobs restarts the copies that were running when the agent stopped.
func (r *Runner) resumeJobs(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(r.cfg.StateDir, "tasks", "*", "job.json"))
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var spec jobSpec
		if json.Unmarshal(b, &spec) != nil || spec.TaskID == "" {
			continue
		}
		r.log.Info("resuming the copy in flight", "task", spec.TaskID, "command", spec.Command)
		r.bucket(spec.TaskID).Set(spec.SpeedLimit)
		r.startJob(ctx, spec)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// backoff waits 1 s, 2 s, 4 s … up to 30 s, with jitter.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: time.Second} }

func (b *backoff) reset() { b.d = time.Second }

func (b *backoff) wait(ctx context.Context) bool {
	d := b.d/2 + time.Duration(rand.Int64N(int64(b.d)))
	b.d = min(b.d*2, 30*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
