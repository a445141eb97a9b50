package store

import (
	"context"
	"fmt"
)

// ThroughputPoint is a wave's summed copy speed over one stretch of time:
// the console's wave chart draws these against the wave's budget.
type ThroughputPoint struct {
	// AtMs is the stretch's start, epoch milliseconds.
	AtMs int64
	// Mbps is the sum over the wave's tasks of each task's mean speed in
	// the stretch.
	Mbps float64
}

// WaveThroughput sums the speed samples of the tenant's wave's tasks
// (task_speed_samples, kept as progress reports arrive) into stretches of
// bucketMs from sinceMs on, oldest first. A task's samples in one stretch
// are averaged first, so a task that reported twice there counts once.
// The sums run in the database: a wave of a thousand members need not
// bring its samples over.
func (s *Store) WaveThroughput(ctx context.Context, t Tenant, waveID string, sinceMs, bucketMs int64) ([]ThroughputPoint, error) {
	if bucketMs < 1 {
		bucketMs = SpeedSampleEvery
	}
	var out []ThroughputPoint
	// at_ms - at_ms % b is integer arithmetic in both SQLite and MySQL
	// (MySQL's "/" would give a decimal).
	err := s.db.WithContext(ctx).Raw(`SELECT b AS at_ms, SUM(m) AS mbps FROM (
		SELECT s.task_id, s.at_ms - (s.at_ms % ?) AS b, AVG(s.mbps) AS m
		FROM task_speed_samples s JOIN tasks k ON k.domain_id = s.domain_id AND k.id = s.task_id
		WHERE s.domain_id = ? AND k.wave_id = ? AND s.at_ms >= ?
		GROUP BY s.task_id, b) x GROUP BY b ORDER BY b`, bucketMs, t.DomainID, waveID, sinceMs).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("wave throughput: %w", err)
	}
	return out, nil
}
