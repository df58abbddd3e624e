package syncserver

import (
	"context"
	"errors"
	"fmt"
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

// Authenticator maps a bearer token to the user it belongs to. Tokens (a
// fixed set), SignedTokens (signed, expiring tokens) and AnyOf (several of
// them together) implement it.
type Authenticator interface {
	// Authenticate returns the user id for token, or ok=false when the
	// token is unknown (answered 401 "unknown bearer token"). An error
	// wrapping ErrTokenExpired says the token is genuine but expired
	// (answered 401 "token expired"); any other error means it could not
	// tell (the request is answered 500, and the error is logged). The
	// token is the client's input: it may be any text, of any length.
	Authenticate(ctx context.Context, token string) (user string, ok bool, err error)
}

// Tokens is a fixed set of bearer tokens, each mapped to a user id. It
// implements Authenticator, comparing tokens in constant time. Its tokens
// never expire; see SignedTokens for tokens that do.
type Tokens map[string]string

// Authenticate implements Authenticator: the user of token, or ok=false
// when token is not in the set (or maps to an empty user id). It never
// fails.
func (t Tokens) Authenticate(_ context.Context, token string) (string, bool, error) {
	user, found := "", false
	for tok, u := range t {
		if constantTimeEqual(tok, token) {
			user, found = u, true
		}
	}
	return user, found && user != "", nil
}

// Validate checks that the set is not empty, that no token is empty and
// that every user id is valid: non-empty, at most MaxUserIDBytes bytes of
// valid UTF-8, no control characters (the rule SignedTokens uses too).
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
		if err := validateUserID(user); err != nil {
			return fmt.Errorf("a token maps to a bad user id: %w", err)
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
