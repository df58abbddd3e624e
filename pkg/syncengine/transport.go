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
	default:
		return fmt.Sprintf("%s: server answered %d", e.Op, e.Status)
	}
}

// Unwrap returns the underlying network or decoding error.
func (e *TransportError) Unwrap() error { return e.Err }

// Transient reports whether retrying the same request later may succeed:
// no response at all, a 5xx, 408 or 429. Authentication failures (401,
// 403) are transient too: the request is fine, the credentials may be
// fixed; nothing may be dropped because of them.
func (e *TransportError) Transient() bool {
	switch e.Status {
	case 0, 408, 429, 401, 403: // no answer, request timeout, too many requests, unauthorized, forbidden
		return true
	}
	return e.Status >= 500
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
