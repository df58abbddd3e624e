package syncserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// servePull answers GET /sync/pull?cursor=C&limit=N with the page of the
// user's records changed after C, in change order, each once with its
// current state, and whether more changes follow.
func (h *Handler) servePull(w http.ResponseWriter, r *http.Request, user string) {
	q, ok := h.query(w, r, "cursor", "limit")
	if !ok {
		return
	}
	after, err := parseCursor(q.Get("cursor"))
	if err != nil {
		h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, err.Error())
		return
	}
	limit := protocol.DefaultPullLimit
	if q.Has("limit") {
		if limit, err = parseLimit(q.Get("limit")); err != nil {
			h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, err.Error())
			return
		}
	}
	changes, err := h.opts.Store.Changes(r.Context(), user, after, limit+1)
	if err != nil {
		h.internalError(w, r, fmt.Errorf("pull for user %q: %w", user, err))
		return
	}
	hasMore := len(changes) > limit
	if hasMore {
		changes = changes[:limit]
	}
	if len(changes) == 0 && after > 0 && !h.cursorKnown(w, r, user, after) {
		return
	}
	resp := protocol.PullResponse{Changes: make([]protocol.RecordState, len(changes)), Cursor: formatCursor(after), HasMore: hasMore}
	for i, c := range changes {
		resp.Changes[i] = c.Record
	}
	if n := len(changes); n > 0 {
		resp.Cursor = formatCursor(changes[n-1].Position)
	}
	h.writeJSON(w, http.StatusOK, resp)
}

// cursorKnown checks that a cursor past the last change is not past the
// user's newest position. Positions only grow, so every cursor this server
// gave out is at most that; a greater one comes from another (or a reset)
// server database, and answering "nothing new" to it forever would hide
// every change. It answers 400 VALIDATION and returns false for such a
// cursor.
func (h *Handler) cursorKnown(w http.ResponseWriter, r *http.Request, user string, after int64) bool {
	head, err := h.opts.Store.Head(r.Context(), user)
	if err != nil {
		h.internalError(w, r, fmt.Errorf("pull for user %q: %w", user, err))
		return false
	}
	if after <= head {
		return true
	}
	h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, fmt.Sprintf(
		"cursor %d is ahead of this server's newest change (%d): the server's data was reset; pull again from the beginning (empty cursor)", after, head))
	return false
}

// query parses the request's query string strictly: a malformed one (a ';'
// separator, a bad %-escape, which url.Values would silently drop) or one
// that repeats a parameter of known is answered 400 VALIDATION (and ok is
// false). Other parameters are ignored (e.g. a cache buster).
func (h *Handler) query(w http.ResponseWriter, r *http.Request, known ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, protocol.CodeValidation,
			"the query string "+quote(clip(r.URL.RawQuery, 80))+" is malformed (a ';' or a bad %-escape): send name=value pairs joined by '&'")
		return nil, false
	}
	for _, name := range known {
		if len(q[name]) > 1 {
			h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, "the query parameter "+name+" appears more than once: send it once")
			return nil, false
		}
	}
	return q, true
}

// parseCursor reads a pull cursor: "" (from the beginning) or the decimal
// position a previous answer gave out.
func parseCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := parseDecimal(s)
	if err != nil {
		return 0, fmt.Errorf("cursor %s is not one this server gave out: send the cursor of the last answer, or none to start from the beginning", quote(clip(s, 40)))
	}
	return n, nil
}

// parseLimit reads a pull page size: 1 to protocol.MaxPullLimit.
func parseLimit(s string) (int, error) {
	n, err := parseDecimal(s)
	if err != nil || n < 1 || n > protocol.MaxPullLimit {
		return 0, fmt.Errorf("limit %s must be a whole number from 1 to %d", quote(clip(s, 40)), protocol.MaxPullLimit)
	}
	return int(n), nil
}

// parseDecimal accepts only plain decimal digits (no sign, no spaces) that
// fit an int64.
func parseDecimal(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("not a decimal number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// formatCursor is the cursor text of a position; position 0 (nothing seen
// yet) is "", the same as no cursor.
func formatCursor(pos int64) string {
	if pos <= 0 {
		return ""
	}
	return strconv.FormatInt(pos, 10)
}
