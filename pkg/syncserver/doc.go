// Package syncserver is the opfsync sync server as a library: an
// http.Handler that serves the sync protocol defined in pkg/protocol
// (POST /sync/push, GET /sync/pull, GET /sync/events, GET /healthz) on top of
// a Store.
//
// The protocol rules — validation, idempotence per mutation id, clamping of
// stamps dated too far in the future, field-level last-writer-wins — live in
// this package above the Store, so every storage backend shares them. A
// Store only keeps records, their change positions and the verdicts given to
// mutation ids, per user. The default backend is a single SQLite file
// (OpenSQLite).
//
// Every request to /sync/* carries a bearer token; the Authenticator maps it
// to a user id, and everything a request reads or writes is scoped to that
// user. Tokens is a fixed set of tokens, SignedTokens checks signed,
// expiring tokens (an expired one is answered 401 "token expired"), and
// AnyOf combines them.
//
// Input is refused, never repaired: a push body must be valid UTF-8 JSON
// with exactly the protocol's keys (case-sensitive, none repeated), and
// the strings the server decodes must be valid Unicode, so ids and names
// are stored exactly as sent; field values are stored verbatim. Error responses are protocol.ErrorResponse JSON; an internal failure
// answers 500 "internal error" and its detail goes only to the log.
package syncserver
