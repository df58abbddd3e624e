package syncserver

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"unicode/utf8"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// internalMessage is the only thing a client learns about an internal
// failure.
const internalMessage = "internal error"

// writeJSON answers status with v encoded by protocol.Marshal.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := protocol.Marshal(v)
	if err != nil {
		h.log.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		body = internalBody()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client gone mid-answer is not an error here
}

// writeError answers status with a protocol.ErrorResponse body.
func (h *Handler) writeError(w http.ResponseWriter, status int, code, message string) {
	h.writeJSON(w, status, protocol.ErrorResponse{Error: protocol.ErrorBody{Code: code, Message: message}})
}

// internalError logs err with the request's context and answers 500
// "internal error": the detail stays in the log.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	h.writeError(w, http.StatusInternalServerError, protocol.CodeInternal, internalMessage)
}

func internalBody() []byte {
	b, _ := protocol.Marshal(protocol.ErrorResponse{Error: protocol.ErrorBody{Code: protocol.CodeInternal, Message: internalMessage}})
	return b
}

// recoverPanic turns a panic in a handler into a logged 500 (when nothing
// was written yet). http.ErrAbortHandler keeps its meaning.
func (h *Handler) recoverPanic(w *trackingWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	h.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if w.wrote {
		panic(http.ErrAbortHandler) // too late for a clean answer: cut the connection
	}
	h.writeError(w, http.StatusInternalServerError, protocol.CodeInternal, internalMessage)
}

// trackingWriter records whether the answer has started, so a panic can
// still be answered cleanly before it has. It unwraps for
// http.ResponseController (flushes and deadlines of event streams).
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap returns the underlying writer (for http.ResponseController).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// clip shortens s to at most n bytes without splitting a UTF-8 sequence,
// marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quote quotes s for a message.
func quote(s string) string { return strconv.Quote(s) }

func versionText() string { return strconv.Itoa(protocol.Version) }
