package protocol

import "time"

// PushRequest is the body of POST /sync/push: one client's mutations in the
// order it made them. The server applies them in that order.
type PushRequest struct {
	ClientID  string     `json:"clientId"`
	Mutations []Mutation `json:"mutations"`
}

// MutationStatus is the server's verdict on one pushed mutation.
type MutationStatus string

// Verdicts: applied now, applied by an earlier delivery of the same
// mutation id (duplicate), or refused for good (rejected).
const (
	StatusApplied   MutationStatus = "applied"
	StatusDuplicate MutationStatus = "duplicate"
	StatusRejected  MutationStatus = "rejected"
)

// MutationResult answers one pushed mutation. For applied and duplicate
// mutations Record is the server's state of the record after the mutation;
// for rejected ones Error says why.
type MutationResult struct {
	MutationID string         `json:"mutationId"`
	Status     MutationStatus `json:"status"`
	Record     *RecordState   `json:"record,omitempty"`
	Error      *ErrorBody     `json:"error,omitempty"`
}

// PushResponse answers a PushRequest, one result per mutation, in order.
type PushResponse struct {
	Results []MutationResult `json:"results"`
}

// PullResponse is one page of GET /sync/pull: the caller's records that
// changed after the request's cursor, in server order, with the cursor to
// ask from next and whether more pages follow.
type PullResponse struct {
	Changes []RecordState `json:"changes"`
	Cursor  string        `json:"cursor"`
	HasMore bool          `json:"hasMore"`
}

// ErrorBody is the error object of every error response and rejected
// mutation: a stable code and a message that says what to do.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse is the JSON body of every non-2xx response.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// Error codes on the wire. They match the JS client's error codes where the
// meaning is the same.
const (
	CodeValidation   = "VALIDATION"
	CodeUnauthorized = "UNAUTHORIZED"
	CodeForbidden    = "FORBIDDEN"
	CodeNotFound     = "NOT_FOUND"
	CodeTooLarge     = "TOO_LARGE"
	CodeMethod       = "METHOD_NOT_ALLOWED"
	CodeContentType  = "UNSUPPORTED_MEDIA_TYPE"
	CodeRateLimited  = "RATE_LIMITED"
	CodeVersion      = "VERSION"
	CodeInternal     = "INTERNAL"
)

// The HTTP surface (paths relative to the server's origin).
const (
	PathPush    = "/sync/push"
	PathPull    = "/sync/pull"
	PathEvents  = "/sync/events"
	PathHealthz = "/healthz"
)

// VersionHeader carries the protocol version on every request. A server
// answers a missing header as Version, and another value with 400 VERSION.
const VersionHeader = "Opfsync-Protocol"

// MaxClockSkew is how far ahead of the server's clock a mutation's stamp may
// be. A stamp further in the future is re-stamped with the server's clock
// (clamped, not refused), so a client with a wrong or lying clock cannot win
// every conflict and still loses no edit.
const MaxClockSkew = 60 * time.Second

// Server-sent events on PathEvents. The server sends EventPoke when the
// caller's data changed (and once right after connecting), with a
// PokeData payload; comment lines (": ping") keep the stream alive.
const (
	EventPoke = "poke"
)

// PokeData is the data of a poke event: the newest cursor the server has
// for the caller (a client already at it need not pull).
type PokeData struct {
	Cursor string `json:"cursor"`
}
