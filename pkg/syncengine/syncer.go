package syncengine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// SyncOptions configure the sync loop. Only Transport is required.
type SyncOptions struct {
	Transport Transport
	// PushBatch is the most mutations per push request (default 200, at
	// most protocol.MaxBatchMutations).
	PushBatch int
	// PullLimit is the page size asked for (default protocol.DefaultPullLimit).
	PullLimit int
	// PullInterval is how often to pull when no event stream is connected
	// (default 30 s); with a live stream it is ten times longer (a safety
	// net: pokes trigger pulls).
	PullInterval time.Duration
	// RequestTimeout bounds each push or pull request (default 30 s).
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a transient
	// failure: it starts at MinBackoff (default 1 s), doubles per failure up
	// to MaxBackoff (default 60 s), with jitter, and resets on success.
	MinBackoff, MaxBackoff time.Duration
	// NoEvents turns off the server event stream (pull on the interval only).
	NoEvents bool
	// StartOffline says the device has no network as sync starts (the
	// browser's navigator.onLine is false): no push or pull is attempted
	// until SetOnline(true) or SyncNow, and Status().Online starts false.
	StartOffline bool
}

func (o *SyncOptions) defaults() {
	if o.PushBatch <= 0 || o.PushBatch > protocol.MaxBatchMutations {
		o.PushBatch = 200
	}
	if o.PullLimit <= 0 || o.PullLimit > protocol.MaxPullLimit {
		o.PullLimit = protocol.DefaultPullLimit
	}
	if o.PullInterval <= 0 {
		o.PullInterval = 30 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(60*time.Second, o.MinBackoff)
	}
}

// maxPushBytes caps the estimated size of one push request, well under the
// server's protocol.MaxRequestBytes.
const maxPushBytes = protocol.MaxRequestBytes / 2

// Syncer is the sync loop of one engine: it pushes the outbox (in order, in
// batches) and pulls remote changes, on local writes, server pokes, an
// interval, SyncNow and coming online, retrying transient failures with
// exponential backoff and jitter on a single timer. Start it with
// Engine.StartSync; it stops with Stop or the engine's Close.
type Syncer struct {
	e    *Engine
	opts SyncOptions

	kick   chan struct{}      // local writes queued
	poke   chan struct{}      // the server has changes for us
	now    chan chan error    // SyncNow requests
	online chan bool          // SetOnline
	ctx    context.Context    // ends with Stop
	stop   context.CancelFunc // ends both goroutines
	done   sync.WaitGroup     // both goroutines
	unsub  func()             // engine change subscription

	mu     sync.Mutex // guards the fields below
	status Status     // last status reported
	cursor string     // pull cursor after the last applied page
	stream bool       // an event stream is connected
	saved  int64      // LastSyncAt as last persisted
	// noNetwork is the last SetOnline(false) (or StartOffline) not yet
	// followed by SetOnline(true); netChanged is closed, and replaced, on
	// every SetOnline, to wake the event stream's loop.
	noNetwork  bool
	netChanged chan struct{}
}

// StartSync starts the engine's sync loop with opts. An engine has at most
// one loop; Close stops it.
func (e *Engine) StartSync(opts SyncOptions) (*Syncer, error) {
	if opts.Transport == nil {
		return nil, errorf(CodeValidation, "sync needs a transport")
	}
	opts.defaults()
	// Read the starting state before taking closeMu: an engine call takes
	// closeMu too (after commits), so no engine call may wait under it.
	ps, err := e.PullState(context.Background())
	if err != nil {
		return nil, err
	}
	pending, err := e.PendingCount(context.Background())
	if err != nil {
		return nil, err
	}
	lastSync, err := e.lastSyncAt(context.Background())
	if err != nil {
		return nil, err
	}
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.isClosed {
		return nil, ErrClosed
	}
	if e.syncer != nil {
		return nil, errorf(CodeValidation, "sync is already running for this store")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{
		e: e, opts: opts,
		kick:   make(chan struct{}, 1),
		poke:   make(chan struct{}, 1),
		now:    make(chan chan error),
		online: make(chan bool, 1),
		ctx:    ctx,
		stop:   cancel,
		status: Status{Online: !opts.StartOffline, Pending: pending, LastSyncAt: lastSync},
		saved:  lastSync,
		cursor: ps.Cursor,

		noNetwork:  opts.StartOffline,
		netChanged: make(chan struct{}),
	}
	s.unsub = e.Subscribe(func(ev Event) {
		if ce, ok := ev.(*ChangeEvent); ok && ce.Queued {
			signal(s.kick)
		}
	})
	e.syncer = s
	s.done.Add(1)
	go s.run(ctx)
	if !opts.NoEvents {
		s.done.Add(1)
		go s.listen(ctx)
	}
	return s, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Stop ends the loop and waits for it; a request in flight is abandoned
// (its mutations stay queued and are retried by the next loop). Stop is
// idempotent.
func (s *Syncer) Stop() {
	s.stop()
	s.done.Wait()
	s.unsub()
	s.e.closeMu.Lock()
	if s.e.syncer == s {
		s.e.syncer = nil
	}
	s.e.closeMu.Unlock()
}

// SyncNow pushes the outbox and pulls, now, even while backing off or
// offline, and returns the error of that attempt (nil when both succeeded).
func (s *Syncer) SyncNow(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.now <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return ErrClosed
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetOnline tells the loop whether the device has a network (the browser's
// online/offline events). Coming online retries at once, the event stream
// included; while offline the loop does not try on its own (SyncNow still
// does) and the event stream is not reconnected.
func (s *Syncer) SetOnline(online bool) {
	s.mu.Lock()
	s.noNetwork = !online
	close(s.netChanged)
	s.netChanged = make(chan struct{})
	s.mu.Unlock()
	select {
	case <-s.online:
	default:
	}
	s.online <- online
}

// network returns whether the device is known to be offline, and a channel
// closed at the next SetOnline.
func (s *Syncer) network() (offline bool, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noNetwork, s.netChanged
}

// Status returns the last known sync status.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// updateStatus applies fn to the status and emits a StatusEvent when it
// changed.
func (s *Syncer) updateStatus(fn func(st *Status)) {
	s.mu.Lock()
	next := s.status
	fn(&next)
	changed := next != s.status
	s.status = next
	s.mu.Unlock()
	if changed {
		s.e.events.emit(&StatusEvent{Status: next})
	}
}

// refreshPending sets the status's outbox size, once, when the loop
// starts: a commit between NewSyncer's count and the loop's registration
// did not update this status. Every later commit that changes the outbox
// updates it itself (Engine.emitLocalStatus). The count and the update
// happen in one engine call, so an older count never overtakes a newer one.
func (s *Syncer) refreshPending(ctx context.Context) {
	_ = s.e.call(ctx, func() error {
		n, err := s.e.countPending()
		if err == nil {
			s.updateStatus(func(st *Status) { st.Pending = n })
		}
		return err
	})
}

// run is the loop: one cycle at a time, one timer for both the retry
// backoff and the pull interval.
func (s *Syncer) run(ctx context.Context) {
	defer s.done.Done()
	s.refreshPending(ctx)
	var (
		online       = !s.opts.StartOffline
		wantPush     = s.Status().Pending > 0
		wantPull     = true // catch up at start
		failures     = 0
		timer        = time.NewTimer(time.Hour)
		waiters      []chan error
		forceNow     bool
		retryAt      time.Time
		backoffing   bool
		pullInterval = func() time.Duration {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.stream {
				return 10 * s.opts.PullInterval
			}
			return s.opts.PullInterval
		}
	)
	defer timer.Stop()
	resetTimer := func(d time.Duration) {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d)
	}
	for {
		due := (wantPush || wantPull) && (forceNow || online && !backoffing)
		if due {
			err := s.cycle(ctx, wantPush || forceNow, wantPull || forceNow)
			for _, w := range waiters {
				w <- err
			}
			waiters, forceNow = nil, false
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				failures++
				delay := s.backoff(failures, err)
				retryAt, backoffing = time.Now().Add(delay), true
				resetTimer(delay)
			} else {
				failures, backoffing = 0, false
				wantPush, wantPull = false, false
				resetTimer(pullInterval())
			}
		}
		select {
		case <-ctx.Done():
			for _, w := range waiters {
				w <- ErrClosed
			}
			return
		case <-s.kick:
			wantPush = true // the commit updated the status's pending count
		case <-s.poke:
			wantPull = true
		case w := <-s.now:
			waiters = append(waiters, w)
			wantPush, wantPull, forceNow = true, true, true
		case on := <-s.online:
			online = on
			if on {
				backoffing = false // retry at once
				wantPull = true
			} else {
				s.updateStatus(func(st *Status) { st.Online = false })
			}
		case <-timer.C:
			if backoffing && time.Now().Before(retryAt) {
				resetTimer(time.Until(retryAt))
				continue
			}
			backoffing = false
			wantPull = true
		}
	}
}

// backoff returns the delay before retry number n (1-based): MinBackoff
// doubling to MaxBackoff, with half of it jittered, or the server's
// Retry-After when that is longer.
func (s *Syncer) backoff(n int, err error) time.Duration {
	d := s.opts.MinBackoff
	for i := 1; i < n && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxBackoff)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	var te *TransportError
	if errors.As(err, &te) && te.RetryAfter > d {
		d = min(te.RetryAfter, 10*s.opts.MaxBackoff)
	}
	return d
}

// cycle runs one sync: push (the whole outbox) then pull (every page).
func (s *Syncer) cycle(ctx context.Context, push, pull bool) error {
	s.updateStatus(func(st *Status) { st.Syncing = true })
	err := s.syncOnce(ctx, push, pull) // its commits update the pending count
	at := time.Now().UnixMilli()
	if err == nil {
		s.persistLastSync(ctx, at)
	}
	s.updateStatus(func(st *Status) {
		st.Syncing = false
		if err == nil {
			st.Online, st.Error, st.LastSyncAt = true, "", at
			return
		}
		st.Error = err.Error()
		var te *TransportError
		if errors.As(err, &te) {
			st.Online = !te.Unreachable()
		}
	})
	return err
}

func (s *Syncer) syncOnce(ctx context.Context, push, pull bool) error {
	if push {
		if err := s.pushAll(ctx); err != nil {
			return err
		}
	}
	if pull {
		return s.pullAll(ctx)
	}
	return nil
}

// pushAll sends the outbox in seq order until it is empty. A batch the
// server refuses as a whole for its content (TransportError.RefusesContent)
// is retried one mutation at a time; a single mutation refused that way is
// dropped (rolled back) with a rejected event, so one bad mutation never
// blocks the queue. Any other failure keeps the whole batch for a retry.
func (s *Syncer) pushAll(ctx context.Context) error {
	batchSize := s.opts.PushBatch
	for {
		batch, err := s.e.PendingBatch(ctx, batchSize)
		if err != nil {
			return err
		}
		batch = capBatchBytes(batch)
		if len(batch) == 0 {
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		resp, err := s.opts.Transport.Push(rctx, &protocol.PushRequest{ClientID: s.e.ClientID(), Mutations: batch})
		cancel()
		if err != nil {
			te := asTransportError("push", err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !te.RefusesContent() {
				s.e.MarkPushFailed(ctx, mutationIDs(batch), te.Error())
				return te
			}
			if len(batch) > 1 {
				batchSize = 1 // find the one the server cannot take
				continue
			}
			code, msg := te.Code, te.Message
			if code == "" {
				code, msg = protocol.CodeValidation, te.Error()
			}
			if err := s.e.AckPush(ctx, []protocol.MutationResult{{
				MutationID: batch[0].MutationID, Status: protocol.StatusRejected,
				Error: &protocol.ErrorBody{Code: code, Message: msg},
			}}); err != nil {
				return err
			}
			continue
		}
		if err := s.e.AckPush(ctx, resp.Results); err != nil {
			return err
		}
		if !answersFirst(resp, batch) {
			// The server answered without the head of the batch: retrying
			// at once would loop. Treat it as a transient server fault.
			return &TransportError{Op: "push", Status: 502, Message: "the server did not answer the first mutation of the batch"}
		}
		batchSize = s.opts.PushBatch
	}
}

func answersFirst(resp *protocol.PushResponse, batch []protocol.Mutation) bool {
	for _, r := range resp.Results {
		if r.MutationID == batch[0].MutationID {
			return true
		}
	}
	return false
}

func mutationIDs(ms []protocol.Mutation) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.MutationID
	}
	return ids
}

// capBatchBytes trims a batch to stay under maxPushBytes (always keeping
// at least one mutation).
func capBatchBytes(ms []protocol.Mutation) []protocol.Mutation {
	size := 0
	for i, m := range ms {
		n := 256 + len(m.ID) + len(m.Collection)
		for name, v := range m.Fields {
			n += len(name) + len(v) + 8
		}
		if size+n > maxPushBytes && i > 0 {
			return ms[:i]
		}
		size += n
	}
	return ms
}

// pullAll fetches and applies pages until the server has no more. A cursor
// the server no longer accepts (TransportError.RefusesContent) starts a
// full resync once.
func (s *Syncer) pullAll(ctx context.Context) error {
	ps, err := s.e.BeginPull(ctx)
	if err != nil {
		return err
	}
	resynced := false
	for {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		page, err := s.opts.Transport.Pull(rctx, ps.Cursor, s.opts.PullLimit)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			te := asTransportError("pull", err)
			if te.RefusesContent() && ps.Cursor != "" && !resynced {
				resynced = true
				if ps, err = s.e.ResetPull(ctx); err != nil {
					return err
				}
				if ps, err = s.e.BeginPull(ctx); err != nil {
					return err
				}
				continue
			}
			s.e.FailPull(ctx, ps.Epoch, te.Error())
			return te
		}
		res, err := s.e.ApplyPullPage(ctx, ps.Epoch, page)
		if err != nil {
			return err
		}
		if !res.Applied { // reset meanwhile: start over in the new epoch
			if ps, err = s.e.BeginPull(ctx); err != nil {
				return err
			}
			continue
		}
		ps = res.State
		s.mu.Lock()
		s.cursor = ps.Cursor
		s.mu.Unlock()
		if !page.HasMore {
			return nil
		}
	}
}

// listen keeps the server's event stream open while the loop runs,
// reconnecting with backoff, and turns pokes into pulls. While the device
// is offline it does not try; coming online reconnects at once.
func (s *Syncer) listen(ctx context.Context) {
	defer s.done.Done()
	failures := 0
	for ctx.Err() == nil {
		offline, changed := s.network()
		if offline {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				failures = 0
				continue
			}
		}
		started := time.Now()
		err := s.opts.Transport.Events(ctx, s.e.ClientID(), func(p protocol.PokeData) {
			s.mu.Lock()
			s.stream = true
			current := s.cursor
			s.mu.Unlock()
			if p.Cursor == "" || p.Cursor != current {
				signal(s.poke)
			}
		})
		s.mu.Lock()
		s.stream = false
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			failures = 0
		}
		failures++
		t := time.NewTimer(s.backoff(failures, err))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed: // online again (or offline: then wait above)
			t.Stop()
			failures = 0
		case <-t.C:
		}
	}
}

// lastSyncPersistEvery limits how often a successful sync's time is written
// to the database: each write is a durable commit, and a slightly stale
// "last synced" after a reload is harmless.
const lastSyncPersistEvery = 10 * time.Second

// persistLastSync stores at (the end of a successful sync) in meta when the
// stored value is older than lastSyncPersistEvery, so status().lastSyncAt
// survives reloads.
func (s *Syncer) persistLastSync(ctx context.Context, at int64) {
	s.mu.Lock()
	due := at-s.saved >= lastSyncPersistEvery.Milliseconds()
	s.mu.Unlock()
	if !due {
		return
	}
	if s.e.setMeta(ctx, metaLastSyncAt, strconv.FormatInt(at, 10)) == nil {
		s.mu.Lock()
		s.saved = at
		s.mu.Unlock()
	}
}
