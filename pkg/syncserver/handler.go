package syncserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Handler serves the sync protocol: protocol.PathPush, PathPull, PathEvents
// and PathHealthz. Any other path is answered 404 NOT_FOUND. Mount it at
// "/sync/" and "/healthz" of a mux (or at "/" when it is the whole server).
// Create it with New; it is safe for concurrent use.
type Handler struct {
	opts  Options
	log   *slog.Logger
	clock *protocol.Clock // server stamps for clamped mutations
	node  string          // the clock's node id
	hub   *hub

	stopFollow context.CancelFunc // ends SharedStore.Follow; nil for other stores
}

// serverNode is the HLC node id of stamps the server issues.
const serverNode = "server"

// route is one path the Handler serves.
type route struct {
	methods []string // allowed methods besides OPTIONS (CORS preflight)
	sync    bool     // a /sync/* path: needs a bearer token and a protocol version check
	serve   func(h *Handler, w http.ResponseWriter, r *http.Request, user string)
}

var routes = map[string]route{
	protocol.PathPush:    {methods: []string{http.MethodPost}, sync: true, serve: (*Handler).servePush},
	protocol.PathPull:    {methods: []string{http.MethodGet}, sync: true, serve: (*Handler).servePull},
	protocol.PathEvents:  {methods: []string{http.MethodGet}, sync: true, serve: (*Handler).serveEvents},
	protocol.PathHealthz: {methods: []string{http.MethodGet, http.MethodHead}, serve: (*Handler).serveHealthz},
}

// followStartTimeout bounds how long New waits for a SharedStore's change
// feed to start listening.
const followStartTimeout = 10 * time.Second

// New returns a Handler for opts. It fails when opts.Store or opts.Auth is
// missing. When opts.Store is a SharedStore, New starts following its
// announcements (until CloseStreams) and waits, up to followStartTimeout,
// until it listens.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("syncserver: Options.Store is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("syncserver: Options.Auth is required")
	}
	h := &Handler{opts: opts, log: opts.logger(), hub: newHub()}
	node := serverNode
	if shared, ok := opts.Store.(SharedStore); ok {
		// Instances stamp with node ids of their own, so that two of them
		// never give the same stamp to different values.
		node = serverNode + ":" + randomHex(6)
		ctx, stop := context.WithCancel(context.Background())
		h.stopFollow = stop
		listening := make(chan struct{})
		var once sync.Once
		wakeAll := func() {
			once.Do(func() { close(listening) })
			h.hub.pokeAll()
		}
		go shared.Follow(ctx, h.log, h.hub.poke, wakeAll)
		// Streams opened before the feed listens could miss a change made
		// through another instance: wait for it (a first wakeAll).
		select {
		case <-listening:
		case <-time.After(followStartTimeout):
			h.log.Warn("the shared store's change feed is not listening yet; streams may miss changes until it does",
				"waited", followStartTimeout)
		}
	}
	h.node = node
	h.clock = protocol.NewClock(node, func() int64 { return h.opts.now().UnixMilli() })
	return h, nil
}

// ServeHTTP implements http.Handler. Every answer carries the CORS headers;
// a panic or store failure is answered 500 "internal error" and logged.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &trackingWriter{ResponseWriter: w}
	defer h.recoverPanic(tw, r)
	setCORS(tw.Header())
	rt, ok := routes[r.URL.Path]
	if !ok {
		h.writeError(tw, http.StatusNotFound, protocol.CodeNotFound, "no such endpoint: "+clip(r.URL.Path, 200))
		return
	}
	allow := strings.Join(slices.Concat(rt.methods, []string{http.MethodOptions}), ", ")
	if r.Method == http.MethodOptions {
		tw.Header().Set("Allow", allow)
		tw.WriteHeader(http.StatusNoContent)
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		tw.Header().Set("Allow", allow)
		h.writeError(tw, http.StatusMethodNotAllowed, protocol.CodeMethod,
			"method "+clip(r.Method, 20)+" is not allowed here; use "+strings.Join(rt.methods, " or "))
		return
	}
	user := ""
	if rt.sync {
		var ok bool
		if user, ok = h.authenticate(tw, r); !ok {
			return
		}
		if !h.checkVersion(tw, r) {
			return
		}
	}
	rt.serve(h, tw, r, user)
}

// CloseStreams ends every open event stream and makes new ones end at once,
// and stops following a SharedStore's announcements. Call it when the
// server shuts down (http.Server.Shutdown does not end long-lived requests
// by itself), e.g. with httpServer.RegisterOnShutdown(h.CloseStreams).
func (h *Handler) CloseStreams() {
	h.hub.close()
	if h.stopFollow != nil {
		h.stopFollow()
	}
}

// setCORS allows any origin: authentication is a bearer token in a header,
// never a cookie, so a foreign page cannot borrow a user's credentials.
func setCORS(hdr http.Header) {
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+protocol.VersionHeader)
	hdr.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	hdr.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
	hdr.Set("Access-Control-Max-Age", "86400")
}

// checkVersion answers 400 VERSION (and returns false) when the request asks
// for a protocol version other than protocol.Version. No header means
// protocol.Version.
func (h *Handler) checkVersion(w http.ResponseWriter, r *http.Request) bool {
	vals, present := r.Header[protocol.VersionHeader]
	want := versionText()
	if !present || len(vals) == 1 && strings.TrimSpace(vals[0]) == want {
		return true
	}
	got := strings.Join(vals, ", ")
	h.writeError(w, http.StatusBadRequest, protocol.CodeVersion,
		"this server speaks protocol version "+want+"; the request asked for "+quote(clip(got, 40))+" in "+protocol.VersionHeader)
	return false
}

// randomHex returns n random bytes as hex: ids that tell this process's
// parts from other instances'.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
