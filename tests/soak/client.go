package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// simClient is one simulated device of a user: its own clock, outbox order,
// pull cursor and (for some) an event stream, all on the shared wire.
type simClient struct {
	id         string
	user       *userModel
	w          *wire
	other      *wire // another instance's wire (w itself with one instance): retries go there
	l          *ledger
	clock      *protocol.Clock
	rng        *rand.Rand
	hammer     bool // no think time
	events     bool // holds /sync/events and pulls on every poke
	shared     int
	rejectRate float64
	retryRate  float64
	raceRate   float64
	thinkMin   time.Duration
	thinkMax   time.Duration
	pullLimit  int

	streams *sync.WaitGroup // the event stream goroutines of every client

	seq     int
	private []recordKey
	cursor  int64
}

// run drives the client until load ends: think, then push a batch (and
// pull) or just pull; pull whenever a poke arrives. Requests use reqCtx, so
// one in flight when load ends still finishes; events ends the stream.
func (c *simClient) run(load, reqCtx, events context.Context) {
	var pokes chan struct{}
	if c.events {
		pokes = make(chan struct{}, 1)
		c.streams.Go(func() { c.holdEvents(events, pokes) })
	}
	c.pullAll(reqCtx) // hydrate, as a fresh device does
	timer := time.NewTimer(c.think())
	defer timer.Stop()
	for {
		select {
		case <-load.Done():
			return
		case <-pokes:
			c.pullAll(reqCtx)
		case <-timer.C:
			if c.hammer || c.rng.IntN(4) != 0 {
				c.pushBatch(reqCtx, c.nextBatch(c.batchSize()))
			}
			c.pullAll(reqCtx)
			timer.Reset(c.think())
		}
	}
}

// think is the pause before the client's next action.
func (c *simClient) think() time.Duration {
	if c.hammer {
		return 0
	}
	return c.thinkMin + time.Duration(c.rng.Int64N(int64(c.thinkMax-c.thinkMin)+1))
}

// holdEvents keeps the client's event stream open until ctx ends,
// reconnecting after a second when it fails (every failure is counted).
func (c *simClient) holdEvents(ctx context.Context, pokes chan<- struct{}) {
	for ctx.Err() == nil {
		err := c.w.events(ctx, c.user.Token, c.id, func() {
			c.l.pokes.Add(1)
			select {
			case pokes <- struct{}{}:
			default: // a pull is already due
			}
		})
		if err == nil {
			return
		}
		c.l.fail(errorKind("events", err), fmt.Errorf("client %s: %w", c.id, err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pushBatch pushes batch until it gets an answer (three tries, as a client
// retries after a failure), checks the verdicts, merges the applied
// mutations into the model, and now and then delivers the batch again — at
// once (a retried request racing the first) or after the answer (a lost
// acknowledgement) — to check that no mutation is applied twice. With
// several instances the second delivery goes to another one, as a retry
// through a load balancer may.
func (c *simClient) pushBatch(ctx context.Context, batch []planned) {
	c.l.batches.Add(1)
	for _, p := range batch {
		if p.invalid {
			c.l.invalidSent.Add(1)
		} else {
			c.l.validSent.Add(1)
		}
	}
	req := &protocol.PushRequest{ClientID: c.id, Mutations: make([]protocol.Mutation, len(batch))}
	for i := range batch {
		req.Mutations[i] = batch[i].Mutation
	}
	if c.rng.Float64() < c.raceRate {
		c.l.races.Add(1)
		var wg sync.WaitGroup
		var second *protocol.PushResponse
		wg.Go(func() { second = c.tryPush(ctx, c.other, req) })
		first := c.tryPush(ctx, c.w, req)
		wg.Wait()
		if first == nil || second == nil {
			c.l.uncertain.Add(int64(len(batch)))
			return
		}
		c.checkRace(batch, first, second)
	} else {
		resp := c.tryPush(ctx, c.w, req)
		if resp == nil {
			c.l.uncertain.Add(int64(len(batch)))
			return
		}
		c.checkFirst(batch, resp)
	}
	if c.rng.Float64() < c.retryRate {
		c.l.retries.Add(1)
		if resp := c.tryPush(ctx, c.other, req); resp != nil {
			c.checkAgain(batch, resp)
		}
	}
}

// tryPush sends req through w up to three times; it returns nil when no
// attempt got an answer (every failure is counted as an error of the run).
func (c *simClient) tryPush(ctx context.Context, w *wire, req *protocol.PushRequest) *protocol.PushResponse {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		resp, err := w.push(ctx, c.user.Token, req)
		if err == nil {
			c.l.pushRequests.Add(1)
			if len(resp.Results) != len(req.Mutations) {
				c.l.fail("push wrong result count", fmt.Errorf("client %s: %d mutations, %d results", c.id, len(req.Mutations), len(resp.Results)))
				return nil
			}
			return resp
		}
		c.l.fail(errorKind("push", err), fmt.Errorf("client %s, attempt %d: %w", c.id, attempt, err))
		if attempt == 3 || ctx.Err() != nil {
			return nil
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}

// checkFirst checks the answer to a batch's first delivery: every valid
// mutation applied, every invalid one rejected (a duplicate is accepted only
// when an earlier attempt of this same request failed, which is counted as
// an error anyway).
func (c *simClient) checkFirst(batch []planned, resp *protocol.PushResponse) {
	for i, p := range batch {
		r := &resp.Results[i]
		if !c.sameID(p, r) {
			continue
		}
		switch {
		case p.invalid:
			c.expect(p, r, protocol.StatusRejected)
		case r.Status == protocol.StatusDuplicate:
			c.l.duplicates.Add(1)
			c.accept(p, r)
		default:
			if c.expect(p, r, protocol.StatusApplied) {
				c.accept(p, r)
			}
		}
	}
}

// checkAgain checks the answer to a batch delivered again: nothing may be
// applied a second time.
func (c *simClient) checkAgain(batch []planned, resp *protocol.PushResponse) {
	for i, p := range batch {
		r := &resp.Results[i]
		if !c.sameID(p, r) {
			continue
		}
		want := protocol.StatusDuplicate
		if p.invalid {
			want = protocol.StatusRejected
		}
		if c.expect(p, r, want) && r.Status == protocol.StatusDuplicate && r.Record == nil {
			c.l.fail("verdict duplicate without record", fmt.Errorf("client %s: %s", c.id, p.MutationID))
		}
	}
}

// checkRace checks two concurrent deliveries of one batch: each valid
// mutation applied by exactly one of them, a duplicate in the other.
func (c *simClient) checkRace(batch []planned, a, b *protocol.PushResponse) {
	for i, p := range batch {
		ra, rb := &a.Results[i], &b.Results[i]
		if !c.sameID(p, ra) || !c.sameID(p, rb) {
			continue
		}
		if p.invalid {
			c.expect(p, ra, protocol.StatusRejected)
			c.expect(p, rb, protocol.StatusRejected)
			continue
		}
		switch {
		case ra.Status == protocol.StatusApplied && rb.Status == protocol.StatusDuplicate:
			c.l.applied.Add(1)
			c.l.duplicates.Add(1)
			c.accept(p, ra)
		case rb.Status == protocol.StatusApplied && ra.Status == protocol.StatusDuplicate:
			c.l.applied.Add(1)
			c.l.duplicates.Add(1)
			c.accept(p, rb)
		default:
			c.l.fail("verdict race", fmt.Errorf("client %s: mutation %s delivered twice at once was answered %s and %s (want applied once, duplicate once)",
				c.id, p.MutationID, ra.Status, rb.Status))
		}
	}
}

// sameID checks that a result answers the mutation at its position.
func (c *simClient) sameID(p planned, r *protocol.MutationResult) bool {
	if r.MutationID == p.MutationID {
		return true
	}
	c.l.fail("verdict out of order", fmt.Errorf("client %s: result for %q where %q was pushed", c.id, r.MutationID, p.MutationID))
	return false
}

// expect counts r's verdict and checks it is want.
func (c *simClient) expect(p planned, r *protocol.MutationResult, want protocol.MutationStatus) bool {
	switch r.Status {
	case protocol.StatusApplied:
		c.l.applied.Add(1)
	case protocol.StatusDuplicate:
		c.l.duplicates.Add(1)
	case protocol.StatusRejected:
		c.l.rejected.Add(1)
	}
	if r.Status == want {
		return true
	}
	why := ""
	if r.Error != nil {
		why = ": " + r.Error.Code + " " + r.Error.Message
	}
	c.l.fail("verdict "+string(r.Status)+" (want "+string(want)+")",
		fmt.Errorf("client %s: mutation %s (%s %s/%s) answered %s%s", c.id, p.MutationID, p.Op, p.Collection, p.ID, r.Status, why))
	return false
}

// accept merges an applied mutation into the model, observes the stamps of
// the answer's record (as a client's clock does) and counts the fields the
// mutation lost to a newer write.
func (c *simClient) accept(p planned, r *protocol.MutationResult) {
	c.user.apply(&p.Mutation)
	if r.Record == nil {
		c.l.fail("verdict applied without record", fmt.Errorf("client %s: %s", c.id, p.MutationID))
		return
	}
	for name, f := range r.Record.Fields {
		c.clock.Observe(f.HLC)
		if _, wrote := p.Fields[name]; wrote && f.HLC.After(p.HLC) {
			c.l.lostFields.Add(1)
		}
	}
}

// pullAll pulls pages from the client's cursor until hasMore is false,
// checking each page's shape and that the cursor only moves forward.
func (c *simClient) pullAll(ctx context.Context) {
	for pages := 0; ; pages++ {
		if pages == 10_000 {
			c.l.fail("pull never ends", fmt.Errorf("client %s: still hasMore after %d pages", c.id, pages))
			return
		}
		page, err := c.w.pull(ctx, c.user.Token, formatCursor(c.cursor), c.pullLimit)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				c.l.fail(errorKind("pull", err), fmt.Errorf("client %s: %w", c.id, err))
			}
			return
		}
		c.l.pullRequests.Add(1)
		c.l.pulledRecs.Add(int64(len(page.Changes)))
		if !c.checkPage(page) {
			return
		}
		for i := range page.Changes {
			for _, f := range page.Changes[i].Fields {
				c.clock.Observe(f.HLC)
			}
		}
		if !page.HasMore {
			return
		}
	}
}

// checkPage checks one pull page and advances the cursor.
func (c *simClient) checkPage(page *protocol.PullResponse) bool {
	bad := func(format string, args ...any) bool {
		c.l.fail("pull bad page", fmt.Errorf("client %s: "+format, append([]any{c.id}, args...)...))
		return false
	}
	pos := int64(0)
	if page.Cursor != "" {
		var err error
		if pos, err = strconv.ParseInt(page.Cursor, 10, 64); err != nil {
			return bad("cursor %q is not a position", page.Cursor)
		}
	}
	switch {
	case pos < c.cursor:
		return bad("cursor went back from %d to %d", c.cursor, pos)
	case len(page.Changes) > c.pullLimit:
		return bad("%d changes in a page of limit %d", len(page.Changes), c.pullLimit)
	case page.HasMore && len(page.Changes) < c.pullLimit:
		return bad("hasMore with %d changes in a page of limit %d", len(page.Changes), c.pullLimit)
	case len(page.Changes) > 0 && pos == c.cursor:
		return bad("%d changes but the cursor stayed at %d", len(page.Changes), pos)
	}
	seen := make(map[recordKey]bool, len(page.Changes))
	for _, r := range page.Changes {
		k := recordKey{r.Collection, r.ID}
		if seen[k] {
			return bad("record %s/%s twice in one page", r.Collection, r.ID)
		}
		seen[k] = true
	}
	c.cursor = pos
	return true
}

// formatCursor is the cursor text of a position ("" for the beginning).
func formatCursor(pos int64) string {
	if pos == 0 {
		return ""
	}
	return strconv.FormatInt(pos, 10)
}
