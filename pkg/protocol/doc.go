// Package protocol is the one definition of the opfsync sync contract: the
// hybrid logical clock, field states and their last-writer-wins merge rule,
// the mutations a client pushes, the record states a server returns, and the
// limits and name rules both sides enforce.
//
// The engine (pkg/syncengine) and the server (pkg/syncserver) both depend on
// this package and on nothing of each other, so a rule changed here changes
// on both sides at once.
package protocol

// Version is the wire protocol version. A peer speaking another version is
// refused with CodeVersion.
const Version = 1
