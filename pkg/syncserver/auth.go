package syncserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// authenticate returns the user of the request's bearer token, or answers
// 401 UNAUTHORIZED (with WWW-Authenticate) and returns false.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="opfsync"`)
		h.writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized,
			"missing bearer token: send the header Authorization: Bearer <token>")
		return "", false
	}
	user, known, err := h.opts.Auth.Authenticate(r.Context(), token)
	if err != nil {
		h.internalError(w, r, fmt.Errorf("authenticate: %w", err))
		return "", false
	}
	if !known {
		w.Header().Set("WWW-Authenticate", `Bearer realm="opfsync", error="invalid_token"`)
		h.writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized,
			"unknown bearer token: check the token the server was started with")
		return "", false
	}
	return user, true
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
