package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

// eventCounter estimates the history a run writes, event by event as the
// server records them, and reports the count through
// GetInfo().GetCurrentHistoryLength(): the test environment keeps no
// history of its own. Everything that wakes the workflow is also charged a
// workflow task (scheduled, started, completed), so the estimate is at or
// above what a server writes for the same run.
type eventCounter struct {
	interceptor.WorkerInterceptorBase
	env      *testsuite.TestWorkflowEnvironment
	events   int
	versions map[string]bool
	onSignal func(name string) // a signal reached the run
}

// wft is a workflow task's three events.
const wft = 3

func newEventCounter(env *testsuite.TestWorkflowEnvironment) *eventCounter {
	c := &eventCounter{env: env, versions: map[string]bool{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{c}})
	return c
}

func (c *eventCounter) add(n int) {
	c.events += n
	c.env.SetCurrentHistoryLength(c.events)
}

func (c *eventCounter) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &countInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, c: c}
}

type countInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	c *eventCounter
}

func (i *countInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&countOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, c: i.c})
}

func (i *countInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	i.c.add(1 + wft) // started, the first task
	return i.Next.ExecuteWorkflow(ctx, in)
}

func (i *countInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	i.c.add(1 + wft)
	if i.c.onSignal != nil {
		i.c.onSignal(in.SignalName)
	}
	return i.Next.HandleSignal(ctx, in)
}

func (i *countInbound) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	i.c.add(2 + wft) // accepted, completed
	return i.Next.ExecuteUpdate(ctx, in)
}

type countOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	c *eventCounter
}

func (o *countOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.c.add(3 + wft) // scheduled, started, completed
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *countOutbound) NewTimer(ctx workflow.Context, d time.Duration) workflow.Future {
	o.c.add(2 + wft) // started, fired or canceled
	return o.Next.NewTimer(ctx, d)
}

func (o *countOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	o.c.add(2 + wft)
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func (o *countOutbound) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	if !o.c.versions[changeID] {
		o.c.versions[changeID] = true
		o.c.add(1) // the marker
	}
	return o.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
}

func (o *countOutbound) UpsertTypedSearchAttributes(ctx workflow.Context, attrs ...temporal.SearchAttributeUpdate) error {
	o.c.add(1)
	return o.Next.UpsertTypedSearchAttributes(ctx, attrs...)
}

// longRun is what driveLongSync saw: each run's estimated history length
// and the state each continue-as-new carried.
type longRun struct {
	events  []int
	carried []*RunState
	last    Status
}

// driveLongSync follows a continuous-sync task for days of simulated time,
// one test environment per run, chained through the continue-as-new error
// each run ends with. The agent copies for three days, reporting every
// 5 minutes (the API's keep-alive), then makes each sync pass (every
// 30 minutes) in two reports; speed windows change the limit twice a day.
// With ops, the operator clones at a third of the time, checks the
// network at half, changes the speed rules at two thirds. At the end the
// operator launches the target and deletes the task. check looks at the
// state carried into each run.
func (s *migrationSuite) driveLongSync(days int, ops bool, prepare func(*testsuite.TestWorkflowEnvironment),
	check func(carried *RunState, limit speedlimit.Limit, rules []speedlimit.Rule, agentPct int32, rounds int)) longRun {
	const day = 24 * time.Hour
	const tick = 5 * time.Minute
	in := input()
	in.Syncing = true
	in.SyncInterval = 30 * time.Minute
	in.AgentStepTimeout = time.Hour
	in.SpeedLimit = 100
	in.SpeedRules = []speedlimit.Rule{{Start: "08:00", End: "18:00", Speed: 40, OverSpeedThreshold: 50}}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	total := time.Duration(days) * day

	var (
		seen     int         // commands the agent has taken up
		cmd      sms.Command // the one it works on
		cmdAt    time.Time
		pct      int32      // its last report
		outbox   []Progress // reports sent and not yet delivered
		got      int32      // the last report on cmd the run received
		rounds   int        // sync passes reported done
		rules    = in.SpeedRules
		phase    int // operator actions done
		launched bool
		deleted  bool
		clone    *verdict
	)
	limitAt := func(t time.Time) speedlimit.Limit {
		ws, _ := speedlimit.Parse(rules)
		l, _ := speedlimit.At(ws, speedlimit.Limit{Mbps: 100}, t, time.UTC)
		return l
	}
	// takeUp: the agent starts on commands queued since it last looked.
	takeUp := func(now time.Time) {
		s.mu.Lock()
		cmds := append([]sms.Command(nil), s.commands...)
		s.mu.Unlock()
		for ; seen < len(cmds); seen++ {
			if c := cmds[seen]; c == "START" || c == "SYNC" {
				cmd, cmdAt, pct, got = c, now, 0, 0
			}
		}
	}
	send := func(p Progress) {
		outbox = append(outbox, p)
		s.env.SignalWorkflow(SignalProgress, p)
	}
	var tickFn func()
	tickFn = func() {
		now := s.env.Now()
		takeUp(now)
		switch cmd {
		case "START":
			pct = max(1, min(100, int32(now.Sub(cmdAt)*100/(3*day))))
			send(Progress{Subtask: "MIGRATE_LINUX_BLOCK", Progress: pct, MigrateSpeed: 30})
		case "SYNC":
			pct += 50
			send(Progress{Subtask: "SYNC_LINUX_BLOCK", Progress: pct, MigrateSpeed: 30})
			if pct == 100 && !launched {
				rounds++
			}
		}
		if pct >= 100 {
			cmd = ""
		}
		elapsed := now.Sub(start)
		switch {
		case ops && phase == 0 && elapsed >= total/3:
			phase++
			clone = s.action(sms.ActionCloneTest)
		case ops && phase == 1 && elapsed >= total/2:
			phase++
			s.Require().True(clone.done)
			s.Equal("", s.code(clone))
			s.action(sms.ActionNetworkCheck)
		case ops && phase == 2 && elapsed >= 2*total/3:
			phase++
			rules = []speedlimit.Rule{{Start: "08:00", End: "18:00", Speed: 20, OverSpeedThreshold: 50}}
			s.env.SignalWorkflow(SignalSpeed, SpeedUpdate{SpeedLimit: 100, Rules: rules})
		case !launched && elapsed >= total && cmd == "":
			launched = true
			s.action(sms.ActionTest)
		case launched && !deleted && s.state().TaskState == sms.TaskMigrateSuccess:
			deleted = true
			s.deleteTask()
		}
		s.env.RegisterDelayedCallback(tickFn, tick)
	}

	var out longRun
	s.env.SetStartTime(start)
	for run := 0; ; run++ {
		s.Require().Less(run, 500, "the chain of runs ends")
		counter := newEventCounter(s.env)
		counter.onSignal = func(name string) {
			if name == SignalProgress {
				got, outbox = outbox[0].Progress, outbox[1:]
			}
		}
		// The server hands a signal that came as the last run ended to the
		// next one; the test environment drops it, so it is sent again.
		for _, p := range outbox[:len(outbox):len(outbox)] {
			s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalProgress, p) }, 0)
		}
		if prepare != nil {
			prepare(s.env)
		}
		s.env.RegisterDelayedCallback(tickFn, tick)
		s.env.ExecuteWorkflow(MigrationWorkflow, in)
		out.events = append(out.events, counter.events)
		err := s.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if !errors.As(err, &can) {
			s.Require().NoError(err)
			s.Require().NoError(s.env.GetWorkflowResult(&out.last))
			return out
		}
		var next Input
		s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		s.Require().NotNil(next.Resume)
		end := s.env.Now()
		takeUp(end)
		if check != nil {
			check(next.Resume, limitAt(end), rules, got, rounds)
		}
		out.carried = append(out.carried, next.Resume)
		in = next
		s.env = s.newEnv()
		s.env.SetStartTime(end)
	}
}

// TestMonthOfSyncKeepsHistoriesBounded: a task copies for three days and
// syncs for the rest of a month. Every run's history stays under the
// bound; the runs continue as new mid-copy (no second START), between sync
// passes and during them, and each carries the whole state: progress,
// sub-task, sync rounds, target, speed rules and the limit in force.
func (s *migrationSuite) TestMonthOfSyncKeepsHistoriesBounded() {
	var midCopy, midPass, between int
	run := s.driveLongSync(30, true, nil, func(c *RunState, limit speedlimit.Limit, rules []speedlimit.Rule, pct int32, rounds int) {
		s.True(c.ResumeSteps, "a carry-over goes back to the steps")
		s.Require().NotNil(c.Target)
		s.Equal("vm-1", c.Target.VMID)
		s.Equal(rules, c.Speed.Rules, "the speed rules in force")
		s.Equal(limit, c.Limit, "the limit in force")
		s.Equal(rounds, c.SyncRounds)
		if c.Step == sms.StepMigrate {
			s.Equal(sms.TaskRunning, c.TaskState)
		} else {
			s.Equal(sms.StepSync, c.Step)
			s.Equal(sms.TaskSyncing, c.TaskState)
		}
		switch {
		case c.ResumeAgent:
			s.True(c.AgentActive)
			s.Equal(pct, c.AgentProgress, "the agent's last report the run received")
			if c.AgentCommand == "START" {
				midCopy++
				s.Equal(sms.Subtask("MIGRATE_LINUX_BLOCK"), c.AgentSubtask)
			} else {
				midPass++
				s.Equal(sms.Subtask("SYNC_LINUX_BLOCK"), c.AgentSubtask)
				s.True(c.InSyncLoop)
			}
		case c.ResumeSync:
			between++
			s.Equal(sms.TaskSyncing, c.TaskState)
			s.True(c.InSyncLoop, "test and clone_test stay allowed")
			s.False(c.NextSyncAt.IsZero())
		default:
			s.Fail("a carry-over is in a step or between passes", "%+v", c)
		}
	})

	maxEvents, sum := 0, 0
	for _, n := range run.events {
		maxEvents, sum = max(maxEvents, n), sum+n
	}
	s.T().Logf("%d runs, %d events in all, at most %d in one", len(run.events), sum, maxEvents)
	s.LessOrEqual(maxEvents, HistoryBound+50, "each run's history stays bounded")
	s.Greater(sum, 8*HistoryBound, "a month is far more than one bounded history")
	s.Positive(midCopy, "continued as new during the three-day copy")
	s.Positive(between, "continued as new between sync passes")
	s.Equal(len(run.events)-1, midCopy+midPass+between)

	s.True(run.last.Deleted)
	s.Equal(1, s.count("START"), "the copy was never sent again")
	rounds := run.last.SyncRounds
	s.Greater(rounds, 900, "27 days of a pass every 40 minutes")
	s.Equal(rounds+1, s.count("SYNC"), "each pass once, and the launch's final pass")
	s.Equal([]sms.Step{sms.StepCheck, sms.StepCreate, sms.StepSSL, sms.StepAttach, sms.StepFormat, sms.StepConfigure, sms.StepDetach, sms.StepStart}, s.steps)
	s.Equal(1, s.clones)
	s.Equal(1, s.count("NETWORK_CHECK"))
	// Two window boundaries a day, each pushed once: a new run does not push
	// the limit it carries again.
	s.GreaterOrEqual(len(s.limits), 60)
	s.LessOrEqual(len(s.limits), 62)
	for i := 1; i < len(s.limits); i++ {
		s.NotEqual(s.limits[i-1].Mbps, s.limits[i].Mbps, "push %d repeats the limit in force", i)
	}
	s.Contains(s.limitValues(), int32(20), "the rules changed on day 20")
}

// TestLongSyncBeforeBoundedHistory: runs that started before
// bounded-history keep their one run while they sync (they replay as they
// ran), and it grows past the bound: what TestMonthOfSyncKeepsHistoriesBounded
// guards against.
func (s *migrationSuite) TestLongSyncBeforeBoundedHistory() {
	run := s.driveLongSync(4, false, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnGetVersion("bounded-history", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	}, nil)
	s.Require().Len(run.events, 1, "one run throughout")
	s.Greater(run.events[0], HistoryBound)
	s.True(run.last.Deleted)
	s.Equal(1, s.count("START"))
}

func (s *migrationSuite) limitValues() []int32 {
	var out []int32
	for _, l := range s.limits {
		out = append(out, l.Mbps)
	}
	return out
}

// carried is the state a run that continued as new handed on.
func (s *migrationSuite) carried() *RunState {
	err := s.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(err, &can), "continued as new: %v", err)
	var next Input
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.Resume)
	return next.Resume
}

// TestContinueAsNewSettlesFirst: what arrives as the server suggests a
// fresh history is done or carried, never dropped — a network check is
// sent, new speed rules are pushed and carried with the limit they give,
// the last progress is kept — and the copy goes on without a second START.
func (s *migrationSuite) TestContinueAsNewSettlesFirst() {
	in := input()
	in.SpeedLimit = 100
	rules := []speedlimit.Rule{{Start: "00:00", End: "24:00", Speed: 30}}
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 40, 10) })
	s.at(2*time.Minute, func() {
		// The signals, the update and the suggestion reach the run in one
		// workflow task, as a server delivers them (the test environment
		// runs a task after a callback: the suggestion is queued last).
		s.env.SignalWorkflowSkippingWorkflowTask(SignalProgress, Progress{Subtask: "MIGRATE_LINUX_BLOCK", Progress: 45, MigrateSpeed: 10})
		s.env.SignalWorkflowSkippingWorkflowTask(SignalSpeed, SpeedUpdate{SpeedLimit: 100, Rules: rules})
		s.action(sms.ActionNetworkCheck)
		s.env.RegisterDelayedCallback(func() { s.env.SetContinueAsNewSuggested(true) }, 0)
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	c := s.carried()
	s.True(c.ResumeSteps && c.ResumeAgent)
	s.Equal(sms.CmdStart, c.AgentCommand)
	s.Equal(int32(45), c.AgentProgress)
	s.Equal(rules, c.Speed.Rules)
	s.Equal(int32(30), c.Limit.Mbps)
	s.False(c.NetworkCheck, "the check was sent, not carried")
	s.Equal([]sms.Command{"START", "NETWORK_CHECK"}, s.commands)
	s.Require().NotEmpty(s.speeds)
	s.Equal(int32(30), s.speeds[len(s.speeds)-1].Mbps, "the agent has the new limit")

	// The next run follows the same copy to its end.
	next := Input(in)
	next.Resume = c
	pushes := len(s.limits)
	s.env = s.newEnv()
	s.env.SetStartTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	s.at(time.Minute, func() {
		st := s.state()
		s.Equal(sms.TaskRunning, st.TaskState)
		s.Equal(sms.StepMigrate, st.Step)
		s.progress("MIGRATE_LINUX_BLOCK", 100, 10)
	})
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 10) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, next)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal([]sms.Command{"START", "NETWORK_CHECK", "SYNC"}, s.commands, "no second START")
	s.Len(s.limits, pushes, "the carried limit is not pushed again")
	s.Equal([]sms.Step{sms.StepCheck, sms.StepCreate, sms.StepSSL, sms.StepAttach, sms.StepFormat, sms.StepConfigure, sms.StepDetach, sms.StepStart}, s.steps)
}

// TestStopAsARunContinuesAsNew: a stop under way when a fresh history is
// suggested is finished first (the agent's answer awaited, the task
// ABORT); the stopped task then continues as new while idle.
func (s *migrationSuite) TestStopAsARunContinuesAsNew() {
	s.at(time.Minute, func() { s.action(sms.ActionStop) })
	s.at(time.Minute+time.Second, func() {
		s.Equal(sms.TaskAborting, s.state().TaskState)
		s.env.SetContinueAsNewSuggested(true)
	})
	s.at(time.Minute+2*time.Second, func() {
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "STOP", Success: true})
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	c := s.carried()
	s.False(c.ResumeSteps, "idle: the next run waits for start")
	s.Equal(sms.TaskAbort, c.TaskState)
	s.Equal(sms.StepMigrate, c.Step)
	s.False(c.StopRequested)
	s.Equal([]sms.Command{"START", "STOP"}, s.commands)
}
