package syncserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// healthTimeout bounds the store check of a health request.
const healthTimeout = 5 * time.Second

// HealthResponse is the body of a healthy GET /healthz.
type HealthResponse struct {
	Status string `json:"status"` // "ok"
}

// serveHealthz answers GET /healthz: 200 {"status":"ok"} when the store
// answers, 503 otherwise (the cause goes to the log). It needs no token.
func (h *Handler) serveHealthz(w http.ResponseWriter, r *http.Request, _ string) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := h.opts.Store.Ping(ctx); err != nil {
		h.log.Error("health check failed", "err", fmt.Errorf("ping store: %w", err))
		h.writeError(w, http.StatusServiceUnavailable, protocol.CodeInternal, "the store is unavailable")
		return
	}
	h.writeJSON(w, http.StatusOK, HealthResponse{Status: "ok"})
}
