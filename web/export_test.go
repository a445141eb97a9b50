package web

import "github.com/smsflow/smsflow/internal/store"

// RefreshDerived exposes the derived-field computation to benchmarks that
// seed sources straight into the database.
func RefreshDerived(src *store.Source) { refreshDerived(src) }

// Gate is how a route is reached (authz.go); GateAPI: by the role rules.
type Gate = gate

// GateAPI is the gate of the API's authenticated routes.
const GateAPI = gateAPI

// RouteGate is the gate of a route's rule, and whether it has one.
func RouteGate(method, path string) (Gate, bool) {
	r, ok := ruleFor(method, path)
	return r.gate, ok
}
