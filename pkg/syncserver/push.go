package syncserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// servePush answers POST /sync/push: it checks the request envelope (media
// type, size, JSON shape, client id, batch size), applies the batch and
// answers one result per mutation; then it pokes the user's other clients.
func (h *Handler) servePush(w http.ResponseWriter, r *http.Request, user string) {
	if msg, ok := checkJSONMediaType(r.Header.Get("Content-Type")); !ok {
		h.writeError(w, http.StatusUnsupportedMediaType, protocol.CodeContentType, msg)
		return
	}
	tooLarge := fmt.Sprintf("request body is larger than %d bytes: push fewer mutations per request", protocol.MaxRequestBytes)
	if r.ContentLength > protocol.MaxRequestBytes {
		h.writeError(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.writeError(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, tooLarge)
			return
		}
		// A body that did not arrive in full (too slow for the server's
		// read timeout, cut, shorter than its Content-Length) is not a bad
		// request: answer 408, which clients retry, never a 400 that would
		// make a client drop the mutations it carries.
		msg := "the request body did not arrive in full (the connection was too slow or broke): send it again"
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) && r.ContentLength >= 0:
			msg = fmt.Sprintf("the request body ended before its Content-Length of %d bytes: send the whole body again", r.ContentLength)
		case errors.Is(err, io.ErrUnexpectedEOF):
			msg = "the request body ended in the middle of a chunk: send the whole body again"
		}
		h.writeError(w, http.StatusRequestTimeout, protocol.CodeValidation, msg)
		return
	}
	req, msg := decodePush(body)
	if msg != "" {
		h.writeError(w, http.StatusBadRequest, protocol.CodeValidation, msg)
		return
	}
	results, changed, err := h.applyPush(r.Context(), user, req)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, protocol.PushResponse{Results: results})
	if changed {
		h.hub.poke(user, req.ClientID)
	}
}

// checkJSONMediaType accepts application/json, with parameters, and a
// charset parameter only when it is UTF-8 (the only encoding of JSON).
func checkJSONMediaType(ct string) (string, bool) {
	const want = "send Content-Type: application/json"
	if ct == "" {
		return "missing Content-Type: " + want, false
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return "unsupported Content-Type " + quote(clip(ct, 80)) + ": " + want, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "unsupported charset " + quote(clip(cs, 40)) + ": JSON must be UTF-8", false
	}
	return "", true
}

// decodePush decodes and checks a push body strictly: valid UTF-8, one JSON
// object, no unknown, case-variant or duplicate keys (anywhere but inside
// field values), no unpaired surrogate escapes in the strings it decodes,
// nothing after it, a valid client id and at most
// protocol.MaxBatchMutations mutations. It returns a message saying what is
// wrong, or "" when the request is well-formed. Each mutation's own rules are
// checked later, one verdict per mutation.
func decodePush(body []byte) (*protocol.PushRequest, string) {
	if msg := checkUTF8(body); msg != "" {
		return nil, msg
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req protocol.PushRequest
	if err := dec.Decode(&req); err != nil {
		return nil, jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "request body has data after the JSON object: send exactly one object"
	}
	if msg := checkEnvelope(body); msg != "" {
		return nil, msg
	}
	if err := protocol.ValidateNode(req.ClientID); err != nil {
		return nil, "clientId: " + err.Error()
	}
	if n := len(req.Mutations); n > protocol.MaxBatchMutations {
		return nil, fmt.Sprintf("batch has %d mutations, the limit is %d: split it", n, protocol.MaxBatchMutations)
	}
	if req.Mutations == nil {
		req.Mutations = []protocol.Mutation{}
	}
	return &req, ""
}

// jsonProblem describes a decoding error of the client's JSON (it is about
// the client's input, so its text may be shown).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "request body is empty: send a JSON object {clientId, mutations}"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body ends in the middle of the JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s: got a JSON %s, want %s", typ.Field, typ.Value, jsonKind(typ.Type))
		}
		return fmt.Sprintf("request body: JSON %s where an object is expected", typ.Value)
	default:
		return "request body: " + clip(strings.TrimPrefix(err.Error(), "json: "), 300)
	}
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another JSON type"
}
