package runner

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/sms"
)

// networkCheck measures the link to the task's target (agent/netcheck) and
// reports it (update-network-check-info). The command succeeds once the
// figures are reported, whatever they say: an unreachable target is a
// finding ("failed"), not a failed check.
func (r *Runner) networkCheck(ctx context.Context, spec jobSpec) {
	info := smsapi.NetworkCheckInfo{DomainConnectivity: r.apiReachable(ctx)}
	var res netcheck.Result
	reached := false
	if spec.TargetAddr != "" {
		var err error
		if res, err = r.probe(ctx, spec); err != nil {
			r.log.Warn("network check: the target did not answer", "task", spec.TaskID, "addr", spec.TargetAddr, "err", err)
		} else {
			reached = true
		}
	} else {
		r.log.Info("network check: the task has no target yet; only the API link is checked", "task", spec.TaskID)
	}
	info.DestinationConnectivity = reached
	info.NetworkDelay = round2(float64(res.Delay) / float64(time.Millisecond))
	info.NetworkJitter = round2(float64(res.Jitter) / float64(time.Millisecond))
	info.MigrationSpeed = round2(min(res.Mbps, 10000))
	info.LossPercentage = round2(min(res.LossPercent, 100))
	if r.cfg.Usage != nil {
		u := r.cfg.Usage()
		info.CPUUsage, info.MemUsage = u.TotalCPU, u.TotalMemPercent
	}
	limit := spec.SpeedLimit
	if limit <= 0 {
		limit = r.bucket(spec.TaskID).Mbps()
	}
	info.EvaluationResult = netcheck.Evaluation(reached, res, limit)
	if err := r.cfg.API.UpdateNetworkCheckInfo(ctx, spec.TaskID, info); err != nil {
		r.result(ctx, spec.CommandID, spec.Command, sms.ResultFail, "SMS.1801", "report the network check: "+err.Error())
		return
	}
	r.log.Info("network check", "task", spec.TaskID, "evaluation", info.EvaluationResult, "delay_ms", info.NetworkDelay,
		"jitter_ms", info.NetworkJitter, "mbps", info.MigrationSpeed, "loss_pct", info.LossPercentage)
	r.result(ctx, spec.CommandID, spec.Command, sms.ResultSuccess, "", "")
}

// probe runs the measurement over one connection of kind Probe, paced by
// the task's speed limit like a copy.
func (r *Runner) probe(ctx context.Context, spec jobSpec) (netcheck.Result, error) {
	cert, key, pass, err := r.cfg.API.TaskCreds(ctx, spec.TaskID)
	if err != nil {
		return netcheck.Result{}, fmt.Errorf("task credentials: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	c, err := transport.Dial(dctx, spec.TargetAddr, transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: pass}, transport.KindProbe)
	cancel()
	if err != nil {
		return netcheck.Result{}, err
	}
	defer c.Close()
	c.SetLimiter(ctx, r.bucket(spec.TaskID))
	return netcheck.Run(ctx, c, r.cfg.NetworkCheck)
}

// apiReachable tells whether the SMS API answers a signed request now.
func (r *Runner) apiReachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := r.cfg.API.Call(ctx, "GET", "/v3/sources/"+url.PathEscape(r.SourceID()), nil, nil)
	return err == nil
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
