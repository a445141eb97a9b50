package store

import (
	"context"

	"gorm.io/gorm"
)

// SpeedSample is a task's copy speed at one moment, kept server-side so the
// console's speed chart covers the task's life and survives a reload.
type SpeedSample struct {
	ID       int64  `gorm:"primaryKey;autoIncrement"`
	DomainID string `gorm:"size:64;not null"`
	TaskID   string `gorm:"size:64;not null"`
	// AtMs is when the progress report arrived, epoch milliseconds.
	AtMs int64 `gorm:"not null"`
	// Mbps is the reported speed, LimitMbps the limit in force then (0: none).
	Mbps       float64 `gorm:"not null"`
	LimitMbps  int32   `gorm:"not null"`
	Replicated int64   `gorm:"not null"`
}

// TableName is the table of 0006.
func (SpeedSample) TableName() string { return "task_speed_samples" }

// SpeedSampleEvery is the finest spacing of samples: reports closer to the
// last sample than this are not kept (a day's copy is at most 8,640 rows).
const SpeedSampleEvery = 10_000 // ms

// addSpeedSample records the task's speed within tx unless a sample was
// kept less than SpeedSampleEvery before.
func addSpeedSample(tx *gorm.DB, task *Task, nowMs int64) error {
	var last int64
	if err := tx.Model(&SpeedSample{}).Select("COALESCE(MAX(at_ms), 0)").
		Where("domain_id = ? AND task_id = ?", task.DomainID, task.ID).Scan(&last).Error; err != nil {
		return err
	}
	if last != 0 && nowMs-last < SpeedSampleEvery {
		return nil
	}
	return tx.Create(&SpeedSample{DomainID: task.DomainID, TaskID: task.ID, AtMs: nowMs, Mbps: task.MigrateSpeed,
		LimitMbps: task.CurrentLimit, Replicated: task.Replicatesize}).Error
}

// SpeedSamples lists the tenant's task's samples, oldest first; with more
// than limit, it keeps limit of them spread evenly over the task's life.
func (s *Store) SpeedSamples(ctx context.Context, t Tenant, taskID string, limit int) ([]SpeedSample, error) {
	var out []SpeedSample
	err := s.db.WithContext(ctx).Select("at_ms", "mbps", "limit_mbps", "replicated").
		Where("domain_id = ? AND task_id = ?", t.DomainID, taskID).Order("at_ms").Find(&out).Error
	if err != nil || limit <= 0 || len(out) <= limit {
		return out, err
	}
	thin := make([]SpeedSample, 0, limit)
	for i := range limit {
		thin = append(thin, out[i*(len(out)-1)/(limit-1)])
	}
	return thin, nil
}
