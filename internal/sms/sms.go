// Package sms is the spec's vocabulary: the words of the SMS API v3 and of
// the official SDK's enums — task states and types, operator actions, source
// states and migration cycles, the steps of a migration and their sub-task
// names, and the agent's command names — as typed constants. The web
// handlers, the store, the workflows, the activities and the agent all speak
// through these types; none of them spells one of these words as a string
// literal.
//
// The package is pure (no I/O, no dependencies beyond the standard library):
// workflows may use it, and so may the agent, which imports nothing else of
// the server side.
package sms
