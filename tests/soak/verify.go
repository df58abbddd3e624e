package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/opfsync/opfsync/internal/serverproc"
	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncserver"
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
	Integrity         string   `json:"integrityCheck"`     // PRAGMA integrity_check
	PulledRecords     int      `json:"finalPullRecords"`   // records in the final pulls of every user
	ComparedFields    int      `json:"comparedFields"`     // fields compared with the model
	Mismatches        int      `json:"mismatches"`         // records differing from the model
	MismatchExamples  []string `json:"mismatchExamples"`   // the first few, described
	PullsAgree        bool     `json:"pullsAgree"`         // two fresh full pulls (page sizes 1000 and 10000) agree
	RestartExitCode   int      `json:"restartExitCode"`    // exit code of the restarted server after SIGTERM
	RestartLogProblem []string `json:"restartLogProblems"` // WARN/ERROR lines of the restarted server
}

// verify checks the stopped server's database against the ledger: the
// applied and rejected counts (exactly once), PRAGMA integrity_check, and
// the records a restarted server returns to each user against the model.
func verify(ctx context.Context, cfg Config, dbPath, logPath string, l *ledger) (*Checks, error) {
	c := &Checks{
		ExpectedApplied:  l.validSent.Load(),
		AppliedVerdicts:  l.applied.Load(),
		ExpectedRejected: l.invalidSent.Load(),
		Uncertain:        l.uncertain.Load(),
	}
	for _, u := range l.users {
		keys, _ := u.snapshot()
		c.ExpectedRecords += int64(len(keys))
	}
	if err := storeStats(ctx, dbPath, c); err != nil {
		return nil, err
	}
	integrity, err := integrityCheck(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	c.Integrity = integrity
	srv, err := serverproc.Start(ctx, cfg.Server, logPath, "-addr", "127.0.0.1:0", "-db", dbPath, "-tokens", filepath.Join(filepath.Dir(dbPath), "tokens.json"))
	if err != nil {
		return nil, fmt.Errorf("restart the server: %w", err)
	}
	w := newWire(srv.URL, 8)
	defer w.close()
	c.PullsAgree = true
	for _, u := range l.users {
		if err := c.compareUser(ctx, w, u); err != nil {
			srv.Stop(shutdownWait)
			return nil, err
		}
	}
	code, _, err := srv.Stop(shutdownWait)
	if err != nil {
		return nil, fmt.Errorf("stop the restarted server: %w", err)
	}
	c.RestartExitCode, c.RestartLogProblem = code, srv.Problems()
	return c, nil
}

// storeStats fills the database's counts through the server's own store
// API.
func storeStats(ctx context.Context, dbPath string, c *Checks) error {
	store, err := syncserver.OpenSQLite(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("open the server database: %w", err)
	}
	defer store.Close()
	st, err := store.Stats(ctx, "")
	if err != nil {
		return fmt.Errorf("count the server database: %w", err)
	}
	c.StoreApplied, c.StoreRejected, c.StoreRecords = st.Applied, st.Rejected, st.Records
	return nil
}

// integrityCheck runs PRAGMA integrity_check on a read-only connection and
// returns its answer ("ok" when the file is sound).
func integrityCheck(ctx context.Context, dbPath string) (string, error) {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	db, err := driver.Open("file:" + filepath.ToSlash(abs) + "?mode=ro")
	if err != nil {
		return "", fmt.Errorf("integrity check: open %s: %w", dbPath, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", fmt.Errorf("integrity check: %w", err)
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return strings.Join(lines, "; "), nil
}

// maxExamples bounds the mismatches described in the report.
const maxExamples = 10

// compareUser pulls everything of u twice from the restarted server (pages
// of 1000, then of 10000) and compares both with the model.
func (c *Checks) compareUser(ctx context.Context, w *wire, u *userModel) error {
	first, err := fullPull(ctx, w, u.Token, protocol.DefaultPullLimit)
	if err != nil {
		return fmt.Errorf("final pull of %s: %w", u.Name, err)
	}
	second, err := fullPull(ctx, w, u.Token, protocol.MaxPullLimit)
	if err != nil {
		return fmt.Errorf("second final pull of %s: %w", u.Name, err)
	}
	if !samePull(first, second) {
		c.PullsAgree = false
		c.mismatch("%s: two full pulls of the restarted server differ (%d and %d records)", u.Name, len(first), len(second))
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
