//go:build js && wasm

// Package fetch is the sync transport of the wasm build: push, pull and the
// server's event stream through the browser's fetch, called directly (Go's
// net/http would do the same through fetch but adds about 2 MB gzip to the
// module).
package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/hack-pad/safejs"
	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
)

// Transport talks to an opfsync-server at URL (its origin) with a bearer
// Token. It implements syncengine.Transport; every failure is a
// *syncengine.TransportError.
type Transport struct {
	URL   string
	Token string
}

// response is what a finished fetch gave: status, the Retry-After header,
// and (once read) the body.
type response struct {
	status     int
	retryAfter string
	value      safejs.Value // the Response object
}

// start sends one request and waits for the response headers. The request
// is aborted when ctx ends.
func (t *Transport) start(ctx context.Context, op, method, path string, query string, body []byte, accept string) (*response, func(), error) {
	fail := func(err error) (*response, func(), error) {
		return nil, func() {}, &syncengine.TransportError{Op: op, Err: err}
	}
	g := safejs.Global()
	ctor, err := g.Get("AbortController")
	if err != nil {
		return fail(err)
	}
	controller, err := ctor.New()
	if err != nil {
		return fail(err)
	}
	abort := func() { controller.Call("abort") }
	signal, err := controller.Get("signal")
	if err != nil {
		return fail(err)
	}
	headers := map[string]any{
		"Authorization":        "Bearer " + t.Token,
		protocol.VersionHeader: strconv.Itoa(protocol.Version),
		"Accept":               accept,
	}
	init := map[string]any{"method": method, "cache": "no-store"}
	if body != nil {
		headers["Content-Type"] = "application/json"
		init["body"] = string(body)
	}
	init["headers"] = headers
	initValue, err := safejs.ValueOf(init)
	if err != nil {
		return fail(err)
	}
	if err := initValue.Set("signal", signal); err != nil {
		return fail(err)
	}
	url := strings.TrimRight(t.URL, "/") + path
	if query != "" {
		url += "?" + query
	}
	p, err := g.Call("fetch", url, initValue)
	if err != nil {
		return fail(err)
	}
	v, err := jsutil.Await(ctx, p, nil)
	if err != nil {
		abort()
		return fail(err)
	}
	r := &response{value: v}
	if s, err := v.Get("status"); err == nil {
		r.status, _ = s.Int()
	}
	if h, err := v.Get("headers"); err == nil {
		if ra, err := h.Call("get", "Retry-After"); err == nil && ra.Type() == safejs.TypeString {
			r.retryAfter, _ = ra.String()
		}
	}
	return r, abort, nil
}

// text reads the whole body.
func (r *response) text(ctx context.Context) ([]byte, error) {
	v, err := jsutil.CallAwait(ctx, r.value, "text", nil)
	if err != nil {
		return nil, err
	}
	s, err := v.String()
	return []byte(s), err
}

// exchange runs one request to completion and decodes a 200 answer into out.
func (t *Transport) exchange(ctx context.Context, op, method, path, query string, body []byte, out any) error {
	resp, abort, err := t.start(ctx, op, method, path, query, body, "application/json")
	if err != nil {
		return err
	}
	defer abort()
	text, err := resp.text(ctx)
	if err != nil {
		// A cut answer: the server may have applied the request, so it is
		// retried (idempotently), never dropped.
		return &syncengine.TransportError{Op: op, Err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.status != 200 {
		return syncengine.ResponseError(op, resp.status, text, resp.retryAfter)
	}
	if err := protocol.Unmarshal(text, out); err != nil {
		return &syncengine.TransportError{Op: op, Err: fmt.Errorf("read answer: %w", err)}
	}
	return nil
}

// Push implements syncengine.Transport.
func (t *Transport) Push(ctx context.Context, req *protocol.PushRequest) (*protocol.PushResponse, error) {
	body, err := protocol.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	var out protocol.PushResponse
	if err := t.exchange(ctx, "push", "POST", protocol.PathPush, "", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Pull implements syncengine.Transport.
func (t *Transport) Pull(ctx context.Context, cursor string, limit int) (*protocol.PullResponse, error) {
	q := "limit=" + strconv.Itoa(limit)
	if cursor != "" {
		q += "&cursor=" + cursor // decimal, no escaping needed; checked by the server
	}
	var out protocol.PullResponse
	if err := t.exchange(ctx, "pull", "GET", protocol.PathPull, q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events implements syncengine.Transport: it streams the response body
// chunk by chunk into the server-sent-events parser.
func (t *Transport) Events(ctx context.Context, clientID string, onPoke func(protocol.PokeData)) error {
	resp, abort, err := t.start(ctx, "events", "GET", protocol.PathEvents, "clientId="+clientID, nil, "text/event-stream")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer abort()
	if resp.status != 200 {
		text, _ := resp.text(ctx)
		return syncengine.ResponseError("events", resp.status, text, resp.retryAfter)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(pump(ctx, resp.value, pw)) }()
	err = protocol.ReadEvents(pr, func(event, data string) {
		if event != protocol.EventPoke {
			return
		}
		var p protocol.PokeData
		_ = json.Unmarshal([]byte(data), &p) // a poke without data still means "pull"
		onPoke(p)
	})
	pr.Close()
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = io.EOF
	}
	return &syncengine.TransportError{Op: "events", Err: fmt.Errorf("stream ended: %w", err)}
}

// pump copies the response body stream into w until it ends.
func pump(ctx context.Context, resp safejs.Value, w io.Writer) error {
	body, err := resp.Get("body")
	if err != nil || body.IsNull() {
		return fmt.Errorf("no response body stream")
	}
	reader, err := body.Call("getReader")
	if err != nil {
		return err
	}
	defer reader.Call("cancel")
	var buf []byte
	for {
		chunk, err := jsutil.CallAwait(ctx, reader, "read", nil)
		if err != nil {
			return err
		}
		if done, err := chunk.Get("done"); err == nil {
			if d, _ := done.Truthy(); d {
				return io.EOF
			}
		}
		value, err := chunk.Get("value")
		if err != nil {
			return err
		}
		n, err := value.Length()
		if err != nil {
			return err
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := safejs.CopyBytesToGo(buf, value); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}
