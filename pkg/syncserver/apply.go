package syncserver

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Sizes of what a verdict row keeps from a mutation it refused (the
// mutation's own strings may be over their limits) and of a policy message.
const (
	maxStoredName    = protocol.MaxIDBytes
	maxPolicyMessage = 1024
)

// applyPush applies req's mutations for user in order, in one transaction,
// and returns one result per mutation and whether any record changed. It
// fails only when the store does; then nothing was applied.
func (h *Handler) applyPush(ctx context.Context, user string, req *protocol.PushRequest) ([]protocol.MutationResult, bool, error) {
	refusals := h.refusals(ctx, user, req.Mutations)
	var (
		results []protocol.MutationResult
		changed bool
	)
	err := h.opts.Store.Update(ctx, user, func(tx Tx) error {
		results, changed = make([]protocol.MutationResult, 0, len(req.Mutations)), false
		if p, ok := tx.(prefetcher); ok {
			if err := p.prefetch(pushReads(req.Mutations, refusals)); err != nil {
				return err
			}
		}
		now := h.opts.now()
		for i := range req.Mutations {
			res, saved, err := h.applyOne(tx, req.ClientID, &req.Mutations[i], refusals[i], now)
			if err != nil {
				return fmt.Errorf("mutation %d of %d: %w", i+1, len(req.Mutations), err)
			}
			results = append(results, res)
			changed = changed || saved
		}
		if changed {
			return tx.Announce(req.ClientID)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("push for user %q: %w", user, err)
	}
	return results, changed, nil
}

// prefetcher is a Tx that can read in bulk what applying a push will ask
// for one by one (PostgresStore's: one round trip instead of two per
// mutation). Its Verdict and Record then answer those from memory.
type prefetcher interface {
	prefetch(mutationIDs []string, records []recordKey) error
}

// pushReads lists what applyOne will read for muts: the verdict of every
// valid mutation id, and the record of every mutation that may be applied
// (each once).
func pushReads(muts []protocol.Mutation, refusals []*protocol.ErrorBody) ([]string, []recordKey) {
	ids := make([]string, 0, len(muts))
	keys := make([]recordKey, 0, len(muts))
	seen := make(map[recordKey]bool, len(muts))
	for i := range muts {
		m := &muts[i]
		if protocol.ValidateMutationID(m.MutationID) != nil {
			continue
		}
		ids = append(ids, m.MutationID)
		if k := (recordKey{m.Collection, m.ID}); refusals[i] == nil && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return ids, keys
}

// refusals checks each mutation's shape and asks the policy hook about the
// well-formed ones; it returns, per mutation, why it must be rejected (nil
// for the ones that may be applied).
func (h *Handler) refusals(ctx context.Context, user string, muts []protocol.Mutation) []*protocol.ErrorBody {
	out := make([]*protocol.ErrorBody, len(muts))
	for i := range muts {
		m := &muts[i]
		if err := protocol.ValidateMutation(m); err != nil {
			out[i] = &protocol.ErrorBody{Code: protocol.CodeValidation, Message: err.Error()}
			continue
		}
		if h.opts.Authorize == nil {
			continue
		}
		if err := h.opts.Authorize(ctx, user, m); err != nil {
			msg := clip(err.Error(), maxPolicyMessage)
			if msg == "" {
				msg = "refused by the server's policy"
			}
			out[i] = &protocol.ErrorBody{Code: protocol.CodeForbidden, Message: msg}
		}
	}
	return out
}

// storable is s as a verdict row keeps it: at most n bytes, and NUL
// (which a refused mutation's names may hold, and which PostgreSQL text
// cannot) replaced with U+FFFD, so both stores keep the same text and a
// retried mutation gets the same answer.
func storable(s string, n int) string {
	return strings.ReplaceAll(clip(s, n), "\x00", "\uFFFD")
}

// applyOne gives m its verdict inside tx: the stored one when m's id was
// seen before (nothing changes), else a stored rejection when refusal is
// set or the merge would break a record limit, else the merge of m's fields
// into its record. saved reports whether a record changed.
func (h *Handler) applyOne(tx Tx, clientID string, m *protocol.Mutation, refusal *protocol.ErrorBody, now time.Time) (res protocol.MutationResult, saved bool, err error) {
	res.MutationID = m.MutationID
	if err := protocol.ValidateMutationID(m.MutationID); err != nil {
		// Without a valid id there is nothing to keep the verdict under;
		// the same mutation is refused the same way every time anyway.
		return rejected(m.MutationID, &protocol.ErrorBody{Code: protocol.CodeValidation, Message: err.Error()}), false, nil
	}
	prev, seen, err := tx.Verdict(m.MutationID)
	if err != nil {
		return res, false, fmt.Errorf("read verdict: %w", err)
	}
	if seen {
		res, err = h.answerSeen(tx, prev)
		return res, false, err
	}
	if refusal == nil {
		if res.Record, saved, refusal, err = h.merge(tx, m, now); err != nil {
			return res, false, err
		}
	}
	v := Verdict{
		MutationID: m.MutationID,
		Status:     protocol.StatusApplied,
		ClientID:   clientID,
		Collection: storable(m.Collection, maxStoredName),
		RecordID:   storable(m.ID, maxStoredName),
		At:         now,
		Keep:       refusal == nil && clamps(m.HLC, now),
	}
	if refusal != nil {
		refusal = &protocol.ErrorBody{Code: refusal.Code, Message: storable(refusal.Message, maxPolicyMessage)}
		v.Status, v.Error = protocol.StatusRejected, refusal
		res = rejected(m.MutationID, refusal)
	} else {
		res.Status = protocol.StatusApplied
	}
	if err := tx.SaveVerdict(v); err != nil {
		return res, false, fmt.Errorf("save verdict: %w", err)
	}
	return res, saved, nil
}

// merge merges m's fields (re-stamped first when dated too far in the
// future) into its record with field-level LWW and saves the record when it
// changed. It returns the record's state after the merge, or a refusal when
// the merged record would break a record limit (more fields or bytes than
// protocol.ValidateRecordState allows: every client would skip such a
// record, so the server must never hold one).
func (h *Handler) merge(tx Tx, m *protocol.Mutation, now time.Time) (*protocol.RecordState, bool, *protocol.ErrorBody, error) {
	current, _, err := tx.Record(m.Collection, m.ID)
	if err != nil {
		return nil, false, nil, fmt.Errorf("read record: %w", err)
	}
	stamped := *m
	stamped.HLC = h.stamp(m.HLC, now)
	merged := protocol.Fields{}
	maps.Copy(merged, current)
	rec := &protocol.RecordState{Collection: m.Collection, ID: m.ID, Fields: merged}
	if len(merged.Merge(stamped.States())) == 0 {
		return rec, false, nil, nil
	}
	if err := protocol.ValidateRecordState(rec); err != nil {
		return nil, false, &protocol.ErrorBody{Code: protocol.CodeValidation,
			Message: "the record would break a limit with this mutation: " + err.Error()}, nil
	}
	if _, err := tx.SaveRecord(m.Collection, m.ID, merged); err != nil {
		return nil, false, nil, fmt.Errorf("save record: %w", err)
	}
	return rec, true, nil, nil
}

// clamps reports whether a mutation stamped hlc is re-stamped by the server
// at now: dated more than protocol.MaxClockSkew after the server's clock.
func clamps(hlc protocol.HLC, now time.Time) bool {
	return hlc.Wall > now.UnixMilli()+protocol.MaxClockSkew.Milliseconds()
}

// stamp returns the stamp a mutation is applied with: its own, or — when
// it clamps — a fresh server stamp (clamped, not refused). The server clock
// observes every stamp it accepts, so its own stamps sort after them.
func (h *Handler) stamp(hlc protocol.HLC, now time.Time) protocol.HLC {
	if clamps(hlc, now) {
		return h.clock.Now()
	}
	h.clock.Observe(hlc)
	return hlc
}

// answerSeen answers a mutation id that already has a verdict: an applied
// one as a duplicate with the record's current state, a rejected one with
// the stored reason.
func (h *Handler) answerSeen(tx Tx, v Verdict) (protocol.MutationResult, error) {
	switch v.Status {
	case protocol.StatusRejected:
		reason := v.Error
		if reason == nil {
			reason = &protocol.ErrorBody{Code: protocol.CodeValidation, Message: "rejected"}
		}
		return rejected(v.MutationID, reason), nil
	case protocol.StatusApplied:
		fields, ok, err := tx.Record(v.Collection, v.RecordID)
		if err != nil {
			return protocol.MutationResult{}, fmt.Errorf("read record of duplicate: %w", err)
		}
		if !ok {
			// An applied mutation always leaves its record behind; only
			// data removed by hand gets here. Answer what there is.
			h.log.Warn("record of an applied mutation is missing", "mutation", v.MutationID, "collection", v.Collection, "id", v.RecordID)
			fields = protocol.Fields{}
		}
		return protocol.MutationResult{
			MutationID: v.MutationID,
			Status:     protocol.StatusDuplicate,
			Record:     &protocol.RecordState{Collection: v.Collection, ID: v.RecordID, Fields: fields},
		}, nil
	default:
		return protocol.MutationResult{}, fmt.Errorf("mutation %q has a stored verdict of unknown status %q", v.MutationID, v.Status)
	}
}

func rejected(id string, reason *protocol.ErrorBody) protocol.MutationResult {
	return protocol.MutationResult{MutationID: id, Status: protocol.StatusRejected, Error: reason}
}
