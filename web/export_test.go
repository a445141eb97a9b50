package web

import "github.com/smsflow/smsflow/internal/store"

// RefreshDerived exposes the derived-field computation to benchmarks that
// seed sources straight into the database.
func RefreshDerived(src *store.Source) { refreshDerived(src) }
