package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/envcheck"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/sourcestate"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
)

// SourceStore is what the source handlers need.
type SourceStore interface {
	RegisterSource(ctx context.Context, t store.Tenant, r store.Registration) (string, bool, error)
	Source(ctx context.Context, t store.Tenant, id string) (*store.Source, error)
	Sources(ctx context.Context, t store.Tenant, f store.SourceFilter, pg store.Page) ([]store.SourceListRow, int64, error)
	SourceRows(ctx context.Context, t store.Tenant, f store.SourceFilter, pg store.Page) ([]store.SourceListRow, int64, error)
	UpdateSource(ctx context.Context, t store.Tenant, id string, fn func(src *store.Source) error) error
	MoveSource(ctx context.Context, t store.Tenant, id, migProjectID string, fn func(src *store.Source) error) error
	DeleteSources(ctx context.Context, t store.Tenant, ids []string, isBusy func(state string) bool) error
	SourceOverview(ctx context.Context, t store.Tenant) ([]store.SourceStateCount, error)
	TouchSource(ctx context.Context, t store.Tenant, id string, nowMs, minAgeMs int64) error
	SourceExists(ctx context.Context, t store.Tenant, id string) (bool, error)
	SourcesByID(ctx context.Context, t store.Tenant, ids []string) ([]store.SourceListRow, error)
	TaskSummaries(ctx context.Context, t store.Tenant, ids []string) (map[string]store.TaskSummary, error)
}

// HeaderMachineID lets an agent name its machine explicitly (our agent sends
// /etc/machine-id); without it the identity is derived (see machineKey).
const HeaderMachineID = "X-Smsflow-Machine-Id"

type sourceHandlers struct {
	store SourceStore
	// agentTimeout: a source whose agent has not polled for this long shows
	// connected=false.
	agentTimeout time.Duration
	now          func() time.Time
}

func nowMs(t time.Time) int64 { return t.UnixMilli() }

// machineKey decides which registrations are the same machine, so an agent
// that restarts or is re-installed gets its source back instead of a
// duplicate. In order: an explicit machine id (header or body "machine_id");
// else the OS type, host name (or the registered name when the agent sends
// no host name) and sorted MAC addresses, which survive agent
// re-installs but differ between clones of a VM (new MACs). Without a host
// name and a MAC nothing identifies the machine and each registration is new.
func machineKey(header string, b *registerBody) *string {
	id := strings.TrimSpace(header)
	if id == "" && b.MachineID != nil {
		id = strings.TrimSpace(*b.MachineID)
	}
	var raw string
	if id != "" {
		raw = "machine-id:" + id
	} else {
		var macs []string
		if b.Networks != nil {
			for _, n := range *b.Networks {
				if n.MAC != nil && *n.MAC != "" {
					macs = append(macs, strings.ToLower(*n.MAC))
				}
			}
		}
		// Agents that omit the host name (the spec's own example does) send
		// their name, which is the host name by default.
		host := strings.ToLower(ptr.Deref(b.Hostname))
		if host == "" {
			host = strings.ToLower(ptr.Deref(b.Name))
		}
		if host == "" || len(macs) == 0 {
			return nil
		}
		sort.Strings(macs)
		raw = "facts:" + ptr.Deref(b.OSType) + "|" + host + "|" + strings.Join(macs, ",")
	}
	h := sha256.Sum256([]byte(raw))
	k := hex.EncodeToString(h[:])
	return &k
}

func sourceNotFound(id string) error { return notFound(smserr.SMS7602, id) }

func sourceError(err error, id string) error {
	var miss *store.MissingError
	var busy *store.BusyError
	var project *store.MigProjectMissingError
	var inWave *store.SourceInWaveError
	switch {
	case errors.As(err, &inWave):
		// Deleting a running wave's member would pull a server out from
		// under its migration: SMS.8523, cancel the wave first.
		return wave.ErrSourceInWave.New(inWave.SourceID, inWave.WaveID).
			WithDetail("cancel wave " + inWave.WaveID + " before deleting source " + inWave.SourceID)
	case errors.As(err, &miss):
		e := smserr.New(smserr.SMS7602, miss.IDs...).WithStatus(http.StatusNotFound)
		for _, m := range miss.IDs {
			e = e.WithDetail("no such source server: " + m)
		}
		return e
	case errors.As(err, &busy):
		e := smserr.New(smserr.SMS7601, busy.IDs...)
		for _, b := range busy.IDs {
			e = e.WithDetail("a migration task is running on source " + b + ": stop or delete the task first")
		}
		return e
	case errors.As(err, &project):
		return notFound(smserr.SMS7301, project.ID)
	case errors.Is(err, store.ErrNotFound):
		return sourceNotFound(id)
	}
	return err
}

// facts turns a validated register body into a source row (without ids).
func (h sourceHandlers) facts(b *registerBody) *store.Source {
	src := &store.Source{
		Name: ptr.Deref(b.Name), Hostname: ptr.Deref(b.Hostname), IP: ptr.Deref(b.IP), IPv6: b.IPv6,
		OSType: sms.OSType(ptr.Deref(b.OSType)), OSVersion: ptr.Deref(b.OSVersion), VirtualizationType: b.VirtualizationType,
		LinuxBlockCheck: b.LinuxBlockCheck, Firmware: b.Firmware, CPUQuantity: b.CPUQuantity, Memory: b.Memory,
		HasRsync: b.HasRsync, Paravirtualization: b.Paravirtualization, RawDevices: b.RawDevices,
		DriverFiles: b.DriverFiles, SystemServices: b.SystemServices, AccountRights: b.AccountRights,
		BootLoader: b.BootLoader, SystemDir: b.SystemDir, AgentVersion: ptr.Deref(b.AgentVersion),
		KernelVersion: b.KernelVersion, OEMSystem: b.OEMSystem, StartType: b.StartType, IOReadWait: b.IOReadWait,
		HasTc: b.HasTc, Platform: b.Platform, EnterpriseProjectID: "0",
		Disks: []store.SourceDisk{}, VolumeGroups: []store.VolumeGroup{}, BtrfsList: []store.BtrfsFileSystem{},
		Networks: []store.Network{},
	}
	if b.Disks != nil {
		src.Disks = toDisks(*b.Disks)
	}
	if b.VolumeGroups != nil {
		src.VolumeGroups = toVolumeGroups(*b.VolumeGroups)
	}
	if b.BtrfsList != nil {
		src.BtrfsList = toBtrfs(*b.BtrfsList)
	}
	if b.Networks != nil {
		src.Networks = toNetworks(*b.Networks)
	}
	return src
}

// refreshDerived recomputes what follows from the facts: the recommended
// target, the total size and the environment checks.
func refreshDerived(src *store.Source) {
	t := layout.Recommend(src.Disks, src.VolumeGroups)
	b, _ := json.Marshal(t)
	src.InitTargetServer = string(b)
	src.Totalsize = layout.TotalSize(src.Disks)
	src.Checks = envcheck.Run(envcheck.Facts{
		OSType: src.OSType, LinuxBlockCheck: ptr.Deref(src.LinuxBlockCheck), Firmware: ptr.Deref(src.Firmware),
		HasRsync: src.HasRsync, HasTc: src.HasTc, Disks: src.Disks,
	})
}

// register: POST /v3/sources → 200 {"id"}. Registering the same machine
// again refreshes its facts and returns the same id.
func (h sourceHandlers) register(c *gin.Context) {
	var b registerBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	now := h.now()
	src := h.facts(&b)
	src.MachineKey = machineKey(c.GetHeader(HeaderMachineID), &b)
	src.State, src.MigrationCycle = sms.SourceWaiting, sms.CycleChecking
	if b.MigrationCycle != nil || b.State != nil {
		cyc, okC := sourcestate.ParseCycle(ptr.Deref(b.MigrationCycle))
		st, okS := sourcestate.ParseState(ptr.Deref(b.State))
		if !okC || !okS {
			fail(c, smserr.New(smserr.SMS7727).WithDetail("state and migration_cycle must be sent together"))
			return
		}
		if err := sourcestate.Check(cyc, st); err != nil {
			fail(c, smserr.New(smserr.SMS7728).WithDetail(err.Error()))
			return
		}
		src.State, src.MigrationCycle = st, cyc
	}
	refreshDerived(src)
	if envcheck.Failed(src.Checks) && src.State == sms.SourceWaiting {
		src.State = sms.SourceUnavailable
	}
	ms := nowMs(now)
	src.AddDate, src.StateActionTime, src.StageActionTime, src.LastVisitTime = ms, ms, ms, ms
	src.UpdatedAt = now.UTC()
	t := mustPrincipal(c).Tenant()
	reg := store.Registration{Source: src, BodyID: ptr.Deref(b.ID), MigProjectID: ptr.Deref(b.MigProjectID), NewID: uuid.NewString}
	if p := mustPrincipal(c); p.Role == iam.RoleAgent {
		reg.AgentKey = p.AccessKey // the first registration binds the key to its source
	}
	id, created, err := h.store.RegisterSource(c.Request.Context(), t, reg)
	if err != nil {
		if errors.Is(err, store.ErrBoundElsewhere) {
			fail(c, errBoundElsewhere(c))
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			fail(c, notFound(smserr.SMS7301, ptr.Deref(b.MigProjectID)))
			return
		}
		fail(c, err)
		return
	}
	logFor(c).InfoContext(c.Request.Context(), "source registered", "source", id, "created", created, "hostname", src.Hostname)
	ok(c, gin.H{"id": id})
}

func (h sourceHandlers) connectedSince(now time.Time) int64 {
	return nowMs(now.Add(-h.agentTimeout))
}

// list: GET /v3/sources with the filters of table 4-19.
func (h sourceHandlers) list(c *gin.Context) {
	var v checks
	f := store.SourceFilter{
		ID: queryString(c, &v, "id", 255), Name: queryString(c, &v, "name", 255), IP: queryString(c, &v, "ip", 255),
		MigProjectID: queryString(c, &v, "migproject", 255), EnterpriseProjectID: queryString(c, &v, "enterprise_project_id", 255),
		IPv6: queryString(c, &v, "ipv6", 255), VMID: queryString(c, &v, "vm_id", 255),
	}
	if s := c.Query("state"); s != "" {
		if st, ok := sourcestate.ParseState(s); ok && st != sms.SourceUnconnected {
			f.State = string(st)
		} else {
			v.invalid("state", "must be one of "+strings.Join(stateValues, ", "))
		}
	}
	if s := c.Query("migration_cycle"); s != "" {
		if cyc, ok := sourcestate.ParseCycle(s); ok {
			f.MigrationCycle = string(cyc)
		} else {
			v.invalid("migration_cycle", "must be one of "+strings.Join(cycleValues, ", "))
		}
	}
	f.Connected = queryBool(c, &v, "connected")
	f.IsConsistencyResultExist = queryBool(c, &v, "is_consistency_result_exist")
	limit := queryInt(c, &v, "limit", 200, 0, 200)
	if limit == 0 {
		limit = 200 // the spec: 0 means the default, 200
	}
	offset := queryInt(c, &v, "offset", 0, 0, 65535)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	now := h.now()
	f.ConnectedSince = h.connectedSince(now)
	rows, total, err := h.store.Sources(c.Request.Context(), mustPrincipal(c).Tenant(), f, store.Page{Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	// The page is written by hand: checks and init_target_server are stored
	// as JSON text made by this server, and splicing them in avoids the
	// re-validation encoding/json does on every json.RawMessage (half the
	// time of a 200-row page).
	var taskIDs []string
	for _, r := range rows {
		if r.CurrentTaskID != nil {
			taskIDs = append(taskIDs, *r.CurrentTaskID)
		}
	}
	tasks, err := h.store.TaskSummaries(c.Request.Context(), mustPrincipal(c).Tenant(), taskIDs)
	if err != nil {
		fail(c, err)
		return
	}
	buf := make([]byte, 0, 64+len(rows)*3072)
	buf = append(buf, `{"count":`...)
	buf = strconv.AppendInt(buf, total, 10)
	buf = append(buf, `,"source_servers":[`...)
	for i, r := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		var cur any
		if r.CurrentTaskID != nil {
			if ts, found := tasks[*r.CurrentTaskID]; found {
				cur = currentTask(ts)
			}
		}
		row, err := json.Marshal(sourceListJSON{
			CurrentTask: cur, ID: r.ID, IP: r.IP, Name: r.Name, EnterpriseProjectID: r.EnterpriseProjectID, AddDate: r.AddDate,
			OSType: r.OSType, OSVersion: r.OSVersion, OEMSystem: r.OEMSystem, State: r.State,
			Connected: r.LastVisitTime >= f.ConnectedSince, CPUQuantity: r.CPUQuantity, Memory: r.Memory,
			Replicatesize: r.Replicatesize, StageActionTime: r.StageActionTime, Totalsize: r.Totalsize,
			LastVisitTime: r.LastVisitTime, MigrationCycle: r.MigrationCycle, StateActionTime: r.StateActionTime,
			IsConsistencyResultExist: r.IsConsistencyResultExist, HasTc: r.HasTc, StartType: r.StartType,
		})
		if err != nil {
			fail(c, err)
			return
		}
		buf = append(buf, row[:len(row)-1]...) // drop the closing brace
		buf = append(buf, `,"checks":`...)
		buf = append(buf, rawOr(r.Checks, "[]")...)
		buf = append(buf, `,"init_target_server":`...)
		buf = append(buf, rawOr(r.InitTargetServer, `{"disks":[],"volume_groups":[]}`)...)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf)
}

func queryBool(c *gin.Context, v *checks, name string) *bool {
	raw, present := c.GetQuery(name)
	if !present || raw == "" {
		return nil
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		v.invalid(name, "must be true or false")
		return nil
	}
	return &b
}

// show: GET /v3/sources/{id}.
func (h sourceHandlers) show(c *gin.Context, r request) {
	t := r.tenant
	src, err := h.store.Source(c.Request.Context(), t, r.id)
	if err != nil {
		fail(c, sourceError(err, r.id))
		return
	}
	out := h.toJSON(src, h.now())
	if src.CurrentTaskID != nil {
		tasks, err := h.store.TaskSummaries(c.Request.Context(), t, []string{*src.CurrentTaskID})
		if err != nil {
			fail(c, err)
			return
		}
		if ts, found := tasks[*src.CurrentTaskID]; found {
			out.CurrentTask = currentTask(ts)
		}
	}
	ok(c, out)
}

// update: PUT /v3/sources/{id}.
func (h sourceHandlers) update(c *gin.Context, r request) {
	var b updateSourceBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	t := r.tenant
	apply := func(src *store.Source) error {
		if err := b.apply(src); err != nil {
			return err
		}
		refreshDerived(src)
		return nil
	}
	var err error
	if b.MigProjectID != nil {
		err = h.store.MoveSource(c.Request.Context(), t, r.id, *b.MigProjectID, apply)
	} else {
		err = h.store.UpdateSource(c.Request.Context(), t, r.id, apply)
	}
	if err != nil {
		fail(c, sourceError(err, r.id))
		return
	}
	okEmpty(c)
}

// diskInfoBody is the body of PUT /v3/sources/{id}/diskinfo, which replaces the disks, volume groups
// and btrfs file systems (§4.1.10). The SDK names the volume groups
// "volumegroups"; "volume_groups" is read too.
type diskInfoBody struct {
	Disks            *[]serverDiskBody  `json:"disks"`
	VolumeGroups     *[]volumeGroupBody `json:"volumegroups"`
	VolumeGroupsSnak *[]volumeGroupBody `json:"volume_groups"`
	BtrfsList        *[]btrfsBody       `json:"btrfs_list"`
}

func (h sourceHandlers) diskInfo(c *gin.Context, r request) {
	var b diskInfoBody
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	vgs := firstPtr(b.VolumeGroups, b.VolumeGroupsSnak)
	var v checks
	if b.Disks != nil {
		checkDisks(&v, "disks", *b.Disks, updating)
	}
	if vgs != nil {
		checkVolumeGroups(&v, "volumegroups", *vgs)
	}
	if b.BtrfsList != nil {
		checkBtrfs(&v, *b.BtrfsList)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	err := h.store.UpdateSource(c.Request.Context(), r.tenant, r.id, func(src *store.Source) error {
		prevDisks, prevVGs := src.Disks, src.VolumeGroups
		src.Disks, src.VolumeGroups, src.BtrfsList = []store.SourceDisk{}, []store.VolumeGroup{}, []store.BtrfsFileSystem{}
		if b.Disks != nil {
			src.Disks = toDisks(*b.Disks)
		}
		if vgs != nil {
			src.VolumeGroups = toVolumeGroups(*vgs)
		}
		if b.BtrfsList != nil {
			src.BtrfsList = toBtrfs(*b.BtrfsList)
		}
		store.AssignFactIDs(src.Disks, src.VolumeGroups, prevDisks, prevVGs, uuid.NewString)
		refreshDerived(src)
		return nil
	})
	if err != nil {
		fail(c, sourceError(err, r.id))
		return
	}
	okEmpty(c)
}

// changeState: PUT /v3/sources/{id}/changestate (§4.1.6). The pair must be
// allowed by the SMS.7728 matrix; each change stamps its action time.
func (h sourceHandlers) changeState(c *gin.Context, r request) {
	var b struct {
		CopyState      *string `json:"copystate"`
		MigrationCycle *string `json:"migrationcycle"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if b.CopyState == nil || b.MigrationCycle == nil {
		fail(c, smserr.New(smserr.SMS7726))
		return
	}
	if *b.CopyState == "" || *b.MigrationCycle == "" {
		fail(c, smserr.New(smserr.SMS7727))
		return
	}
	st, okS := sourcestate.ParseState(*b.CopyState)
	cyc, okC := sourcestate.ParseCycle(*b.MigrationCycle)
	var v checks
	if !okS {
		v.invalid("copystate", "unknown state "+truncate(*b.CopyState, 32))
	}
	if !okC {
		v.invalid("migrationcycle", "unknown migration cycle "+truncate(*b.MigrationCycle, 32))
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	if err := sourcestate.Check(cyc, st); err != nil {
		fail(c, smserr.New(smserr.SMS7728).WithDetail(err.Error()))
		return
	}
	now := nowMs(h.now())
	err := h.store.UpdateSource(c.Request.Context(), r.tenant, r.id, func(src *store.Source) error {
		if src.State != st {
			src.State, src.StateActionTime = st, now
		}
		if src.MigrationCycle != cyc {
			src.MigrationCycle, src.StageActionTime = cyc, now
		}
		return nil
	})
	if err != nil {
		fail(c, sourceError(err, r.id))
		return
	}
	okEmpty(c)
}

func busy(state string) bool { return sourcestate.Busy(sourcestate.State(state)) }

// delete: DELETE /v3/sources/{id}.
func (h sourceHandlers) delete(c *gin.Context, r request) {
	if err := h.store.DeleteSources(c.Request.Context(), r.tenant, []string{r.id}, busy); err != nil {
		fail(c, sourceError(err, r.id))
		return
	}
	okEmpty(c)
}

// batchDelete: POST /v3/sources/delete {"ids"}; all or nothing.
func (h sourceHandlers) batchDelete(c *gin.Context) {
	ids, err := bindIDs(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.store.DeleteSources(c.Request.Context(), mustPrincipal(c).Tenant(), ids, busy); err != nil {
		fail(c, sourceError(err, ""))
		return
	}
	okEmpty(c)
}

// overview: GET /v3/sources/overview — sources per state; those without a
// task count as "unconfigured".
func (h sourceHandlers) overview(c *gin.Context) {
	rows, err := h.store.SourceOverview(c.Request.Context(), mustPrincipal(c).Tenant())
	if err != nil {
		fail(c, err)
		return
	}
	out := map[string]int64{"unconfigured": 0, "skipping": 0}
	for _, s := range sms.SourceStates {
		out[string(s)] = 0
	}
	for _, r := range rows {
		if !r.Configured {
			out["unconfigured"] += r.N
			continue
		}
		out[r.State] += r.N
	}
	ok(c, out)
}

// errors: GET /v3/errors — sources whose migration failed, with error_json.
func (h sourceHandlers) errors(c *gin.Context) {
	var v checks
	f := store.SourceFilter{ErrorsOnly: true,
		MigProjectID:        queryString(c, &v, "migproject", 255),
		EnterpriseProjectID: queryString(c, &v, "enterprise_project_id", 255)}
	pg := v.page(c, 50, 100)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	rows, total, err := h.store.Sources(c.Request.Context(), mustPrincipal(c).Tenant(), f, pg)
	if err != nil {
		fail(c, err)
		return
	}
	type migrationError struct {
		ErrorJSON string  `json:"error_json"`
		HostName  *string `json:"host_name"`
		Name      string  `json:"name"`
		SourceID  string  `json:"source_id"`
		SourceIP  string  `json:"source_ip"`
		TargetIP  *string `json:"target_ip"`
	}
	// target_ip is the address of the failed task's target, once it has one.
	var taskIDs []string
	for _, r := range rows {
		if r.CurrentTaskID != nil {
			taskIDs = append(taskIDs, *r.CurrentTaskID)
		}
	}
	tasks, err := h.store.TaskSummaries(c.Request.Context(), mustPrincipal(c).Tenant(), taskIDs)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]migrationError, len(rows))
	for i, r := range rows {
		host := r.Hostname
		out[i] = migrationError{ErrorJSON: r.ErrorJSON, HostName: &host, Name: r.Name, SourceID: r.ID, SourceIP: r.IP}
		if r.CurrentTaskID != nil {
			if ts := tasks[*r.CurrentTaskID].TargetServer; ts != nil && ts.IP != "" {
				out[i].TargetIP = &ts.IP
			}
		}
	}
	ok(c, gin.H{"count": total, "migration_errors": out})
}
