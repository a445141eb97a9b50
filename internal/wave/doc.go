// Package wave is the planning core of waves (batch plans): the types a
// wave is made of, its life cycle, and the pure calculations its workflow,
// API and console build on. It does no I/O and never reads the clock:
// every function that needs "now" takes it (the workflow passes
// workflow.Now), and results never depend on map order, so the workflow can
// call anything here and stay deterministic.
//
// A wave is a named set of source servers (members) in one migration
// project, migrated together. Its Spec holds the task defaults every
// member's task gets (type, vm_template_id, syncing, start_target_server,
// over_speed_threshold), per-member overrides (target name, template, disk
// sizes, priority), when it starts (start_at, or on demand), how many
// members copy at once (max_concurrent, 1-100), a bandwidth budget, cutover
// windows, a cutover mode, test_first, max_failures and depends_on.
// Validate lists every problem of a spec with its field path and a wave
// error code. The wave codes are SMS.8500-8528 (errors.go), a range the
// spec's catalog leaves free; ErrorDef.New makes the API error of one.
//
// A wave moves DRAFT → SCHEDULED → REPLICATING → SYNCED → TESTING →
// AWAITING_CUTOVER → CUTTING_OVER → DONE, and can be PAUSED (by an operator
// or after more than max_failures failed members), FAILED or CANCELED;
// CheckWaveMove and CheckAction say what is allowed. Members move PENDING →
// COPYING → SYNCING → (TESTING → TESTED) → CUTTING_OVER → DONE, or FAILED
// and back to the failed step on retry_failed. Only COPYING members hold a
// slot of max_concurrent: a member leaves the sliding window when its full
// copy is done and it is syncing, or when it fails. OrderMembers gives the
// start order: priority 2 first, then 1 (the default), then 0, each as
// listed.
//
// Time windows (TimeWindow) are "HH:MM"-"HH:MM" on some weekdays (none =
// every day), read in the wave's IANA time_zone; an end before the start
// crosses midnight (22:00-06:00 on FRI runs into Saturday), 24:00 ends at
// midnight, start = end is refused. Wall-clock bounds follow DST: a bound in
// the skipped hour moves forward by the gap, one in the repeated hour is its
// first occurrence. The bandwidth budget is Mbit/s for the whole wave, up
// to 5 windows that must not overlap on any weekday plus a default; 0 is
// unlimited, as in a task's speed limit. BudgetAt gives the budget in force
// and the next bound, where the workflow sleeps until. Split shares the
// budget among the copying members by max-min fairness in whole Mbit/s
// that sum to the budget: idle and slow members are given what they use
// (with headroom) and the rest goes to the others; no member gets under 1
// Mbit/s, never 0 under a limited budget (0 would lift its limit). Cutover
// windows say when targets may be launched: NextCutover gives the window
// in force or the next one; no windows means any time.
//
// ParseMembers reads a member CSV (columns name or ip, target_name,
// template, priority, disk_sizes as "40;100" GiB; UTF-8 with or without
// BOM; at most 1 MiB and 10,000 rows): every row or none, each problem with
// its line, column and code. Estimates: CopyEnd from the bytes left and a
// member's rate; MeasureChurn from its sync passes (bytes changed per
// hour), FinalPass from that (the downtime expected at cutover) and
// Converging (churn below its bandwidth, else not_converging);
// SimulateCopies plays the sliding window and the budget's windows forward
// for each member's copy end and the wave's.
package wave
