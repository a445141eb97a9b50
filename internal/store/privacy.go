package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

// PrivacyAgreement records that a domain signed the service statement (the
// SDK's CreatePrivacyAgreements); agents check it before registering.
type PrivacyAgreement struct {
	DomainID string    `gorm:"primaryKey;size:64"`
	UserID   string    `gorm:"size:64;not null"`
	SignedAt time.Time `gorm:"not null"`
}

// SignPrivacyAgreement records the signature (idempotent: the first stays).
func (s *Store) SignPrivacyAgreement(ctx context.Context, t Tenant, userID string, at time.Time) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&PrivacyAgreement{DomainID: t.DomainID, UserID: userID, SignedAt: at.UTC()}).Error
}

// PrivacyAgreementSigned tells whether the domain signed.
func (s *Store) PrivacyAgreementSigned(ctx context.Context, t Tenant) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&PrivacyAgreement{}).Where("domain_id = ?", t.DomainID).Count(&n).Error
	return n > 0, err
}
