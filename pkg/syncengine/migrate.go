package syncengine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Migration modes for legacy data (see Migrate).
const (
	MigrateUpsert = "upsert" // insert missing records; fill unwritten fields of live ones
	MigratePatch  = "patch"  // only fill unwritten fields of live records
)

// Migration is one legacy key's data to import: its records (each with an
// "id"), the collection they belong to, and the mode.
type Migration struct {
	Key        string   `json:"key"`
	Collection string   `json:"collection"`
	Items      []Record `json:"items"`
	Mode       string   `json:"mode,omitempty"`
}

// MigrationError names one item that was skipped, and why.
type MigrationError struct {
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// MigrationResult reports one Migrate call. AlreadyDone means the key's
// marker was found: nothing was imported (the caller only has to clear the
// legacy key).
type MigrationResult struct {
	Imported    int              `json:"imported"`
	Skipped     int              `json:"skipped"`
	Errors      []MigrationError `json:"errors"`
	AlreadyDone bool             `json:"alreadyDone"`
}

// Migrate imports legacy records (e.g. from localStorage) as migration-origin
// mutations, so they sync, and records the per-key "done" marker in the same
// transaction, so a key is never imported twice — also when the caller dies
// before clearing the legacy data. An item never overrides what exists: a
// missing record is inserted (mode upsert), a live record only gets the
// fields nobody has written yet (a user's edit made meanwhile wins), and a
// deleted or (in mode patch) missing record is skipped. Invalid items are
// skipped and listed, never failing the import. Mutation ids are derived
// from the content, so the server applies a re-import at most once.
func (e *Engine) Migrate(ctx context.Context, m Migration) (MigrationResult, error) {
	res := MigrationResult{Errors: []MigrationError{}}
	if m.Key == "" || len(m.Key) > 1024 {
		return res, errorf(CodeValidation, "migrate: the key must be 1 to 1024 bytes")
	}
	if m.Mode == "" {
		m.Mode = MigrateUpsert
	}
	if m.Mode != MigrateUpsert && m.Mode != MigratePatch {
		return res, errorf(CodeValidation, "migrate %s: mode %q is not %q or %q", m.Key, m.Mode, MigrateUpsert, MigratePatch)
	}
	err := e.call(ctx, func() error {
		ci, err := e.collection(m.Collection)
		if err != nil {
			return err
		}
		res = MigrationResult{Errors: []MigrationError{}}
		return e.write(func(t *txn) error {
			marker := "migrated:" + m.Key
			done, err := e.metaExists(marker)
			if err != nil || done {
				res.AlreadyDone = done
				return err
			}
			for _, item := range m.Items {
				reason, err := e.migrateItem(t, ci, m, item)
				if err != nil {
					return err
				}
				if reason == "" {
					res.Imported++
					continue
				}
				res.Skipped++
				id, _ := item["id"].(string)
				res.Errors = append(res.Errors, MigrationError{ID: id, Reason: reason})
			}
			raw, err := marshalJSON(map[string]any{"at": e.opts.now(), "imported": res.Imported, "skipped": res.Skipped})
			if err != nil {
				return err
			}
			t.touch("meta")
			return storageErr("write migration marker", e.stmts.exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, marker, raw))
		})
	})
	return res, err
}

func (e *Engine) metaExists(key string) (bool, error) {
	found := false
	err := e.stmts.query(`SELECT 1 FROM meta WHERE key = ?`, []any{key}, func(*sqlite3.Stmt) error {
		found = true
		return nil
	})
	return found, storageErr("read meta", err)
}

// migrateItem imports one item and returns "" or why it was skipped.
func (e *Engine) migrateItem(t *txn, ci *collectionInfo, m Migration, item Record) (string, error) {
	if item == nil {
		return "not an object", nil
	}
	id, ok := item["id"].(string)
	if !ok {
		return "no string id", nil
	}
	fields := maps.Clone(item)
	delete(fields, "id")
	// Validate as a put (the only write an item may turn into that needs
	// no existing record), then keep just the fields the item gave.
	p, err := e.prepareWrite(Write{Op: protocol.OpPut, Collection: ci.name, ID: id, Fields: fields, Origin: protocol.OriginMigration})
	if err != nil {
		if ee, ok := err.(*Error); ok {
			return ee.Message, nil
		}
		return err.Error(), nil
	}
	for name := range p.values {
		if _, given := fields[name]; !given {
			delete(p.values, name)
		}
	}
	_, _, cur, err := e.loadFolded(ci.name, id)
	if err != nil {
		return "", err
	}
	op := protocol.OpPatch
	values := map[string]json.RawMessage{}
	switch {
	case !cur.exists() && m.Mode == MigratePatch:
		return "refers to a record that does not exist", nil
	case !cur.exists():
		// Only the fields the item gives are written (not the others as
		// null, as a put would), so a later key in mode patch can still
		// fill the rest — e.g. starred ids kept under their own key.
		op = protocol.OpMerge
		for name, v := range p.values {
			values[name] = v
		}
		values[protocol.DeletedField] = jsonFalse
	case !cur.live():
		return "refers to a record that was deleted", nil
	case ci.decl.Immutable:
		return "the record exists and its collection is immutable", nil
	default:
		for name, v := range p.values {
			if _, written := cur[name]; !written {
				values[name] = v
			}
		}
		if len(values) == 0 {
			return "the record exists and has all these fields already", nil
		}
	}
	mut := pendingMut{
		mutationID: migrationMutationID(m.Key, ci.name, id, values),
		collection: ci.name, id: id, op: op,
		fields: values, hlc: e.clock.Now(), origin: protocol.OriginMigration,
	}
	if err := e.insertPendingIgnoringDuplicate(&mut); err != nil {
		return "", err
	}
	_, _, after, err := e.loadFolded(ci.name, id)
	if err != nil {
		return "", err
	}
	if err := e.writeVisible(ci, id, after); err != nil {
		return "", storageErr("write "+ci.name, err)
	}
	t.touch(ci.name)
	t.touch("pending")
	t.queued = true
	return "", nil
}

// migrationMutationID is deterministic in what is imported, so importing the
// same legacy data again (say into a database that was wiped while the
// legacy key survived) yields the same ids and the server applies it once.
func migrationMutationID(key, collection, id string, values map[string]json.RawMessage) string {
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", key, collection, id)
	for _, name := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(sum, "%s\x00%s\x00", name, values[name])
	}
	return "g" + hex.EncodeToString(sum.Sum(nil)[:16])
}
