package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Checks are the consistency checks after the load, with what they found.
type Checks struct {
	ExpectedApplied   int64    `json:"expectedApplied"`    // distinct valid mutation ids pushed
	StoreApplied      int64    `json:"storeApplied"`       // verdicts "applied" in the database
	AppliedVerdicts   int64    `json:"appliedVerdicts"`    // "applied" answers the clients received
	ExpectedRejected  int64    `json:"expectedRejected"`   // distinct invalid mutation ids pushed
	StoreRejected     int64    `json:"storeRejected"`      // verdicts "rejected" in the database
	Uncertain         int64    `json:"uncertain"`          // mutations whose push never got an answer
	ExpectedRecords   int64    `json:"expectedRecords"`    // records in the generator's model
	StoreRecords      int64    `json:"storeRecords"`       // records in the database
	IntegrityCheck    string   `json:"integrityCheckKind"` // what the integrity check was
	Integrity         string   `json:"integrityCheck"`     // its answer ("ok" when sound)
	PulledRecords     int      `json:"finalPullRecords"`   // records in the final pulls of every user
	ComparedFields    int      `json:"comparedFields"`     // fields compared with the model
	Mismatches        int      `json:"mismatches"`         // records differing from the model
	MismatchExamples  []string `json:"mismatchExamples"`   // the first few, described
	PullsAgree        bool     `json:"pullsAgree"`         // two fresh full pulls (page sizes 1000 and 10000) agree
	RestartExitCode   int      `json:"restartExitCode"`    // exit code of the restarted server after SIGTERM
	RestartLogProblem []string `json:"restartLogProblems"` // WARN/ERROR lines of the restarted server
}

// verify checks the stopped servers' store against the ledger: the applied
// and rejected counts (exactly once), the store's integrity, and the
// records restarted servers return to each user against the model. With
// several instances, all are restarted and each user's two full pulls come
// from two different ones.
func verify(ctx context.Context, cfg Config, be *backend, dir, tokens string, l *ledger) (*Checks, error) {
	c := &Checks{
		ExpectedApplied:  l.validSent.Load(),
		AppliedVerdicts:  l.applied.Load(),
		ExpectedRejected: l.invalidSent.Load(),
		Uncertain:        l.uncertain.Load(),
		IntegrityCheck:   be.integrityName(),
	}
	for _, u := range l.users {
		keys, _ := u.snapshot()
		c.ExpectedRecords += int64(len(keys))
	}
	st, err := be.stats(ctx)
	if err != nil {
		return nil, err
	}
	c.StoreApplied, c.StoreRejected, c.StoreRecords = st.Applied, st.Rejected, st.Records
	if c.Integrity, err = be.integrity(ctx); err != nil {
		return nil, err
	}
	srvs, err := startServers(ctx, cfg, be, dir, tokens)
	if err != nil {
		return nil, fmt.Errorf("restart the server: %w", err)
	}
	stopAll := func() {
		for _, s := range srvs {
			s.Stop(shutdownWait)
		}
	}
	wires := make([]*wire, len(srvs))
	for i, s := range srvs {
		wires[i] = newWire(s.URL, 8)
		defer wires[i].close()
	}
	c.PullsAgree = true
	for i, u := range l.users {
		if err := c.compareUser(ctx, wires[i%len(wires)], wires[(i+1)%len(wires)], u); err != nil {
			stopAll()
			return nil, err
		}
	}
	for i, s := range srvs {
		code, _, err := s.Stop(shutdownWait)
		if err != nil {
			return nil, fmt.Errorf("stop the restarted server: %w", err)
		}
		if c.RestartExitCode == 0 {
			c.RestartExitCode = code
		}
		for _, p := range s.Problems() {
			if len(srvs) > 1 {
				p = fmt.Sprintf("instance %d: %s", i+1, p)
			}
			c.RestartLogProblem = append(c.RestartLogProblem, p)
		}
	}
	return c, nil
}

// maxExamples bounds the mismatches described in the report.
const maxExamples = 10

// compareUser pulls everything of u twice from the restarted servers
// (pages of 1000 from w1, then of 10000 from w2) and compares both with the
// model.
func (c *Checks) compareUser(ctx context.Context, w1, w2 *wire, u *userModel) error {
	first, err := fullPull(ctx, w1, u.Token, protocol.DefaultPullLimit)
	if err != nil {
		return fmt.Errorf("final pull of %s: %w", u.Name, err)
	}
	second, err := fullPull(ctx, w2, u.Token, protocol.MaxPullLimit)
	if err != nil {
		return fmt.Errorf("second final pull of %s: %w", u.Name, err)
	}
	if !samePull(first, second) {
		c.PullsAgree = false
		c.mismatch("%s: two full pulls of the restarted servers differ (%d and %d records)", u.Name, len(first), len(second))
	}
	c.PulledRecords += len(first)
	keys, want := u.snapshot()
	for _, k := range keys {
		got, ok := first[k]
		if !ok {
			c.mismatch("%s: %s/%s is missing from the final pull", u.Name, k.Collection, k.ID)
			continue
		}
		c.ComparedFields += len(want[k])
		if d := diffFields(want[k], got); d != "" {
			c.mismatch("%s: %s/%s: %s", u.Name, k.Collection, k.ID, d)
		}
	}
	for k := range first {
		if _, ok := want[k]; !ok {
			c.mismatch("%s: %s/%s is in the final pull but no applied mutation wrote it", u.Name, k.Collection, k.ID)
		}
	}
	return nil
}

func (c *Checks) mismatch(format string, args ...any) {
	c.Mismatches++
	if len(c.MismatchExamples) < maxExamples {
		c.MismatchExamples = append(c.MismatchExamples, fmt.Sprintf(format, args...))
	}
}

// fullPull pulls every record of the token's user from the beginning.
func fullPull(ctx context.Context, w *wire, token string, limit int) (map[recordKey]protocol.Fields, error) {
	out := map[recordKey]protocol.Fields{}
	cursor := ""
	for {
		page, err := w.pull(ctx, token, cursor, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Changes {
			k := recordKey{r.Collection, r.ID}
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("record %s/%s appears twice in a full pull", r.Collection, r.ID)
			}
			out[k] = r.Fields
		}
		if !page.HasMore {
			return out, nil
		}
		cursor = page.Cursor
	}
}

// samePull reports whether two full pulls hold the same records.
func samePull(a, b map[recordKey]protocol.Fields) bool {
	if len(a) != len(b) {
		return false
	}
	for k, fa := range a {
		fb, ok := b[k]
		if !ok || diffFields(fa, fb) != "" {
			return false
		}
	}
	return true
}

// diffFields describes the first difference between the expected and the
// pulled fields of a record ("" when equal: same names, stamps, origins and
// JSON values).
func diffFields(want, got protocol.Fields) string {
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Sprintf("field %s missing (want %s at %s)", name, w.Value, w.HLC)
		case g.HLC != w.HLC:
			return fmt.Sprintf("field %s stamped %s, want %s", name, g.HLC, w.HLC)
		case g.Origin != w.Origin:
			return fmt.Sprintf("field %s origin %s, want %s", name, g.Origin, w.Origin)
		case !sameJSON(g.Value, w.Value):
			return fmt.Sprintf("field %s = %s, want %s", name, g.Value, w.Value)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			return fmt.Sprintf("unexpected field %s", name)
		}
	}
	return ""
}

// sameJSON compares two JSON values ignoring insignificant whitespace.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
