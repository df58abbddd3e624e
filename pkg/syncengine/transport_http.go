package syncengine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// HTTPTransport talks to an opfsync-server over HTTP with net/http (in the
// browser, Go's net/http uses fetch). URL is the server's origin
// ("http://host:port"); Token is the bearer token.
type HTTPTransport struct {
	URL    string
	Token  string
	Client *http.Client // nil uses http.DefaultClient
}

func (t *HTTPTransport) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

func (t *HTTPTransport) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
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
// becomes a *TransportError.
func (t *HTTPTransport) do(op string, req *http.Request, out any) error {
	resp, err := t.client().Do(req)
	if err != nil {
		return &TransportError{Op: op, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(op, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		// A cut or garbled answer: the server may have applied the
		// request, so it must be retried (idempotently), not dropped.
		return &TransportError{Op: op, Err: fmt.Errorf("read answer: %w", err)}
	}
	return nil
}

// responseError turns a non-200 response into a *TransportError.
func responseError(op string, resp *http.Response) *TransportError {
	te := &TransportError{Op: op, Status: resp.StatusCode}
	var body protocol.ErrorResponse
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
		te.Code, te.Message = body.Error.Code, body.Error.Message
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			te.RetryAfter = time.Duration(secs) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			te.RetryAfter = time.Until(at)
		}
	}
	return te
}

// Push implements Transport.
func (t *HTTPTransport) Push(ctx context.Context, preq *protocol.PushRequest) (*protocol.PushResponse, error) {
	body, err := protocol.Marshal(preq)
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	req, err := t.newRequest(ctx, http.MethodPost, protocol.PathPush, nil, body)
	if err != nil {
		return nil, &TransportError{Op: "push", Err: err}
	}
	var out protocol.PushResponse
	if err := t.do("push", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Pull implements Transport.
func (t *HTTPTransport) Pull(ctx context.Context, cursor string, limit int) (*protocol.PullResponse, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	req, err := t.newRequest(ctx, http.MethodGet, protocol.PathPull, q, nil)
	if err != nil {
		return nil, &TransportError{Op: "pull", Err: err}
	}
	var out protocol.PullResponse
	if err := t.do("pull", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events implements Transport: it reads the server-sent event stream.
func (t *HTTPTransport) Events(ctx context.Context, clientID string, onPoke func(protocol.PokeData)) error {
	req, err := t.newRequest(ctx, http.MethodGet, protocol.PathEvents, url.Values{"clientId": {clientID}}, nil)
	if err != nil {
		return &TransportError{Op: "events", Err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := t.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &TransportError{Op: "events", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError("events", resp)
	}
	err = readEvents(resp.Body, func(event, data string) {
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
	return &TransportError{Op: "events", Err: fmt.Errorf("stream ended: %w", err)}
}

// readEvents parses a text/event-stream body, calling fn for each event
// (name "message" when none is given), until the body ends.
func readEvents(r io.Reader, fn func(event, data string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	event, data := "", []string(nil)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil || event != "" {
				if event == "" {
					event = "message"
				}
				fn(event, strings.Join(data, "\n"))
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			// comment (keep-alive)
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
	}
	return sc.Err()
}
