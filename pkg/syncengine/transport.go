package syncengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Transport is how the sync loop reaches a sync server. Implementations
// return a *TransportError for every failure, so the loop can tell a
// transient failure (retry later) from a permanent refusal.
type Transport interface {
	// Push sends one batch of mutations and returns the server's verdicts.
	Push(ctx context.Context, req *protocol.PushRequest) (*protocol.PushResponse, error)
	// Pull fetches the page of changes after cursor ("" = from the start).
	Pull(ctx context.Context, cursor string, limit int) (*protocol.PullResponse, error)
	// Events holds the server's event stream open, calling onPoke for
	// every poke, until ctx ends or the stream breaks; it returns why it
	// ended (nil only when ctx ended).
	Events(ctx context.Context, clientID string, onPoke func(protocol.PokeData)) error
}

// TransportError is a failed exchange with the server. Status is the HTTP
// status (0 when no response arrived); Code and Message come from the
// server's error body when it sent one; RetryAfter is the server's
// Retry-After, if any.
type TransportError struct {
	Op         string
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *TransportError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s: server unreachable: %v", e.Op, e.Err)
	case e.Message != "":
		return fmt.Sprintf("%s: server answered %d %s: %s", e.Op, e.Status, e.Code, e.Message)
	case e.Status == 404 || e.Status == 405:
		return fmt.Sprintf("%s: server answered %d, not as an opfsync server: the sync URL must be the opfsync server's origin (e.g. http://127.0.0.1:8080)", e.Op, e.Status)
	default:
		return fmt.Sprintf("%s: server answered %d", e.Op, e.Status)
	}
}

// Unwrap returns the underlying network or decoding error.
func (e *TransportError) Unwrap() error { return e.Err }

// RefusesContent reports whether the server refused the request for what it
// carries, so that sending the same content again can never succeed: a 413
// (too large, from the server or a proxy in front of it) or an opfsync
// server's 400 VALIDATION. A push of one mutation refused so is refused for
// that mutation, and a pull so refused is refused for its cursor. Every
// other failure says nothing about the content — a 404, 405 or 415 from a
// wrong URL or a proxy, a protocol VERSION mismatch, a 400 that is not an
// opfsync error, no answer, a 5xx, 408, 429, 401 or 403 (the request is
// fine; the credentials may be fixed): the caller keeps the content and
// retries later.
func (e *TransportError) RefusesContent() bool {
	return e.Status == 413 || e.Status == 400 && e.Code == protocol.CodeValidation
}

// Unreachable reports whether no response arrived (the server or the
// network is down).
func (e *TransportError) Unreachable() bool { return e.Status == 0 }

// asTransportError returns err as a *TransportError, wrapping any other
// error as an unreachable one.
func asTransportError(op string, err error) *TransportError {
	var te *TransportError
	if errors.As(err, &te) {
		return te
	}
	return &TransportError{Op: op, Err: err}
}

// ResponseError builds the *TransportError for a non-2xx answer: status,
// the code and message of the server's JSON error body (when body is one),
// and the Retry-After header value (seconds or an HTTP date; "" if none).
// Transports share it so every one classifies answers the same way.
func ResponseError(op string, status int, body []byte, retryAfter string) *TransportError {
	te := &TransportError{Op: op, Status: status}
	var eb protocol.ErrorResponse
	if json.Unmarshal(body, &eb) == nil {
		te.Code, te.Message = eb.Error.Code, eb.Error.Message
	}
	if retryAfter != "" {
		if secs, err := strconv.Atoi(retryAfter); err == nil && secs >= 0 {
			te.RetryAfter = time.Duration(secs) * time.Second
		} else if at, err := time.Parse(time.RFC1123, retryAfter); err == nil {
			te.RetryAfter = time.Until(at)
		}
	}
	return te
}
