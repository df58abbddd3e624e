// Package httpsync is the opfsync sync transport over net/http, for Go
// programs and tests. (In the browser, the wasm build uses a fetch-based
// transport instead: net/http would add about 2 MB gzip to the module.)
package httpsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// Transport talks to an opfsync-server over HTTP with net/http (in the
// browser, Go's net/http uses fetch). URL is the server's origin
// ("http://host:port"); Token is the bearer token.
type Transport struct {
	URL    string
	Token  string
	Client *http.Client // nil uses http.DefaultClient
}

func (t *Transport) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

func (t *Transport) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	u := strings.TrimRight(t.URL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends req and decodes a 200 JSON answer into out; any other answer
// becomes a *syncengine.TransportError.
func (t *Transport) do(op string, req *http.Request, out any) error {
	resp, err := t.client().Do(req)
	if err != nil {
		return &syncengine.TransportError{Op: op, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(op, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		// A cut or garbled answer: the server may have applied the
		// request, so it must be retried (idempotently), not dropped.
		return &syncengine.TransportError{Op: op, Err: fmt.Errorf("read answer: %w", err)}
	}
	return nil
}

// responseError turns a non-200 response into a *syncengine.TransportError.
func responseError(op string, resp *http.Response) *syncengine.TransportError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return syncengine.ResponseError(op, resp.StatusCode, body, resp.Header.Get("Retry-After"))
}

// Push implements syncengine.Transport.
func (t *Transport) Push(ctx context.Context, preq *protocol.PushRequest) (*protocol.PushResponse, error) {
	body, err := protocol.Marshal(preq)
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	req, err := t.newRequest(ctx, http.MethodPost, protocol.PathPush, nil, body)
	if err != nil {
		return nil, &syncengine.TransportError{Op: "push", Err: err}
	}
	var out protocol.PushResponse
	if err := t.do("push", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Pull implements syncengine.Transport.
func (t *Transport) Pull(ctx context.Context, cursor string, limit int) (*protocol.PullResponse, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	req, err := t.newRequest(ctx, http.MethodGet, protocol.PathPull, q, nil)
	if err != nil {
		return nil, &syncengine.TransportError{Op: "pull", Err: err}
	}
	var out protocol.PullResponse
	if err := t.do("pull", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events implements syncengine.Transport: it reads the server-sent event stream.
func (t *Transport) Events(ctx context.Context, clientID string, onPoke func(protocol.PokeData)) error {
	req, err := t.newRequest(ctx, http.MethodGet, protocol.PathEvents, url.Values{"clientId": {clientID}}, nil)
	if err != nil {
		return &syncengine.TransportError{Op: "events", Err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := t.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &syncengine.TransportError{Op: "events", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError("events", resp)
	}
	err = protocol.ReadEvents(resp.Body, func(event, data string) {
		if event != protocol.EventPoke {
			return
		}
		var p protocol.PokeData
		_ = json.Unmarshal([]byte(data), &p) // a poke without data still means "pull"
		onPoke(p)
	})
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = io.EOF
	}
	return &syncengine.TransportError{Op: "events", Err: fmt.Errorf("stream ended: %w", err)}
}
