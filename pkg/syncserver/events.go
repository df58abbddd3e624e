package syncserver

import (
	"fmt"
	"net/http"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// eventWriteTimeout bounds each write to an event stream, so a client that
// stopped reading cannot hold its stream open for ever (the server's
// WriteTimeout is lifted for streams).
const eventWriteTimeout = 30 * time.Second

// serveEvents answers GET /sync/events?clientId=X with a server-sent event
// stream: a poke with the user's newest cursor at once, then one after each
// commit that changed the user's data (unless client X made it; a poke
// always carries a cursor newer than the stream's last one), and a
// ": ping" comment line every PingInterval. It ends when the client goes
// away or CloseStreams is called.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request, user string) {
	q, ok := h.query(w, r, "clientId")
	if !ok {
		return
	}
	clientID := q.Get("clientId")
	if err := protocol.ValidateNode(clientID); err != nil {
		h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, "clientId: "+err.Error())
		return
	}
	select {
	case <-h.hub.done:
		h.writeError(w, http.StatusServiceUnavailable, protocol.CodeInternal, "the server is shutting down: reconnect later")
		return
	default:
	}
	sub, unsubscribe := h.hub.subscribe(user, clientID)
	defer unsubscribe()

	// Read the first cursor after subscribing, so no change falls between.
	head, err := h.opts.Store.Head(r.Context(), user)
	if err != nil {
		h.internalError(w, r, fmt.Errorf("events for user %q: %w", user, err))
		return
	}
	rc := http.NewResponseController(w)
	// The server's WriteTimeout is meant for ordinary requests and would
	// cut the stream: lift it, and give each write its own deadline
	// instead (stream.send). (net/http already lifts the read deadline
	// while a handler runs with the body read.)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		h.log.Warn("event stream: cannot lift the write deadline", "err", err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: rc}
	if !s.poke(head) {
		return
	}
	ping := time.NewTicker(h.opts.pingInterval())
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.hub.done:
			return
		case <-sub.wake:
			newest, err := h.opts.Store.Head(r.Context(), user)
			if err != nil {
				if r.Context().Err() == nil {
					h.log.Error("event stream: read newest cursor", "user", user, "err", err)
				}
				return // the client reconnects and gets a fresh poke
			}
			if newest == head {
				continue // a wake-up with nothing new (e.g. after a shared store's feed reconnected)
			}
			head = newest
			if !s.poke(head) {
				return
			}
		case <-ping.C:
			if !s.send(": ping\n\n") {
				return
			}
		}
	}
}

// stream writes server-sent events, flushing each.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// poke sends a poke event with the cursor of position head.
func (s *stream) poke(head int64) bool {
	data, err := protocol.Marshal(protocol.PokeData{Cursor: formatCursor(head)})
	if err != nil {
		return false
	}
	return s.send("event: " + protocol.EventPoke + "\ndata: " + string(data) + "\n\n")
}

// send writes one event (or comment) and flushes it; false means the
// stream is broken.
func (s *stream) send(text string) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)) // unsupported writers just keep the server's
	if _, err := s.w.Write([]byte(text)); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}
