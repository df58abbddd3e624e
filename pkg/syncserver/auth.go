package syncserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// ErrTokenExpired is what an Authenticator returns (possibly wrapped) for a
// token that is genuine but past its expiry. The Handler answers it 401
// UNAUTHORIZED with `WWW-Authenticate: Bearer realm="opfsync",
// error="invalid_token", error_description="token expired"` and a message
// saying the token expired, so a client knows to get a fresh token rather
// than to fix a wrong one. It is never answered 500.
var ErrTokenExpired = errors.New("bearer token expired")

// MaxUserIDBytes is the longest user id an authenticator may map a token
// to.
const MaxUserIDBytes = 256

// validateUserID is the rule every user id obeys (Tokens.Validate,
// SignedTokens.Issue and SignedTokens.Authenticate use it): non-empty, at
// most MaxUserIDBytes bytes of valid UTF-8, no control characters.
func validateUserID(user string) error {
	switch {
	case user == "":
		return errors.New("user id is empty")
	case len(user) > MaxUserIDBytes:
		return fmt.Errorf("user id is %d bytes, the limit is %d", len(user), MaxUserIDBytes)
	case !utf8.ValidString(user):
		return errors.New("user id is not valid UTF-8")
	}
	for _, r := range user {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("user id %q contains a control character", clip(user, 40))
		}
	}
	return nil
}

// AnyOf returns an Authenticator that asks each of auths in turn (nil ones
// are skipped) and answers with the first that knows the token, e.g.
// AnyOf(Tokens{...}, signed) accepts both static and signed tokens. When
// none knows it, the answer is an error if one of them could not tell (not
// ErrTokenExpired: that error, as the Handler answers it 500), else
// ErrTokenExpired if one of them found the token expired, else unknown.
func AnyOf(auths ...Authenticator) Authenticator {
	return anyOf(slices.DeleteFunc(slices.Clone(auths), func(a Authenticator) bool { return a == nil }))
}

type anyOf []Authenticator

// Authenticate implements Authenticator.
func (a anyOf) Authenticate(ctx context.Context, token string) (string, bool, error) {
	var failed, expired error
	for _, auth := range a {
		user, ok, err := auth.Authenticate(ctx, token)
		switch {
		case errors.Is(err, ErrTokenExpired):
			expired = err
		case err != nil:
			if failed == nil {
				failed = err
			}
		case ok && user != "":
			return user, true, nil
		}
	}
	if failed != nil {
		return "", false, failed
	}
	return "", false, expired
}

// WWW-Authenticate values of 401 answers (RFC 6750).
const (
	challengeMissing = `Bearer realm="opfsync"`
	challengeUnknown = `Bearer realm="opfsync", error="invalid_token"`
	challengeExpired = `Bearer realm="opfsync", error="invalid_token", error_description="token expired"`
)

// authenticate returns the user of the request's bearer token, or answers
// 401 UNAUTHORIZED (with WWW-Authenticate) and returns false. An expired
// token is told apart from an unknown one; an authenticator that cannot
// tell is a 500.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	header := r.Header.Get("Authorization")
	token, ok := bearerToken(header)
	if !ok {
		msg := "missing bearer token: send the header Authorization: Bearer <token>"
		if strings.TrimSpace(header) != "" {
			msg = "the Authorization header is not a bearer token: send Authorization: Bearer <token>"
		}
		h.unauthorized(w, challengeMissing, msg)
		return "", false
	}
	user, known, err := h.opts.Auth.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, ErrTokenExpired):
		h.unauthorized(w, challengeExpired, "the bearer token has expired: get a new token from the app that issued it")
		return "", false
	case err != nil:
		h.internalError(w, r, fmt.Errorf("authenticate: %w", err))
		return "", false
	case !known || user == "":
		h.unauthorized(w, challengeUnknown, "unknown bearer token: check the token the server was started with, or get a new one")
		return "", false
	}
	return user, true
}

func (h *Handler) unauthorized(w http.ResponseWriter, challenge, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	h.writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, msg)
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header value (scheme case-insensitive).
func bearerToken(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// constantTimeEqual compares two secrets in time independent of where they
// differ and of their lengths (both are hashed first).
func constantTimeEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
