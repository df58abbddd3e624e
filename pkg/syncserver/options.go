package syncserver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Options configure a Handler. Store and Auth are required.
type Options struct {
	// Store keeps the data. The Handler does not close it.
	Store Store

	// Auth maps a request's bearer token to a user id.
	Auth Authenticator

	// Authorize, when set, is asked about every pushed mutation that is
	// well-formed, before the batch's transaction starts (so it may do I/O,
	// and it is also asked about mutations that turn out to be duplicates,
	// whose stored verdict then stands). A non-nil error rejects the
	// mutation for good with code FORBIDDEN and the error's message, which
	// is sent to the client as is — say there what the user may not do.
	Authorize func(ctx context.Context, user string, m *protocol.Mutation) error

	// Logger receives internal errors (their detail never reaches a
	// client). Nil uses slog.Default().
	Logger *slog.Logger

	// Now is the server's wall clock. Nil uses time.Now.
	Now func() time.Time

	// PingInterval is how often an idle event stream gets a ": ping"
	// comment line. Zero means 15 seconds.
	PingInterval time.Duration
}

// Authenticator maps a bearer token to the user it belongs to.
type Authenticator interface {
	// Authenticate returns the user id for token, or ok=false when the
	// token is unknown. An error means it could not tell (the request is
	// answered 500, and the error is logged).
	Authenticate(ctx context.Context, token string) (user string, ok bool, err error)
}

// Tokens is a fixed set of bearer tokens, each mapped to a user id. It
// implements Authenticator, comparing tokens in constant time.
type Tokens map[string]string

// Authenticate implements Authenticator.
func (t Tokens) Authenticate(_ context.Context, token string) (string, bool, error) {
	user, found := "", false
	for tok, u := range t {
		if constantTimeEqual(tok, token) {
			user, found = u, true
		}
	}
	return user, found && user != "", nil
}

// Validate checks that every token and user id is non-empty and that the
// set is not empty.
func (t Tokens) Validate() error {
	if len(t) == 0 {
		return errors.New("no tokens")
	}
	for tok, user := range t {
		if tok == "" {
			return errors.New("a token is empty")
		}
		if user == "" {
			return errors.New("a token maps to an empty user id")
		}
	}
	return nil
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) pingInterval() time.Duration {
	if o.PingInterval > 0 {
		return o.PingInterval
	}
	return 15 * time.Second
}
