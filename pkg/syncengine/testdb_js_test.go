//go:build js

package syncengine

import (
	"crypto/rand"
	"testing"

	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// newTestDB returns a fresh database location for one test. The OS VFS does
// not work on js, so a named memdb database stands in; it lives until the
// test ends, so re-opening it sees the same data.
func newTestDB(t testing.TB) (path, vfsName string) {
	t.Helper()
	name := "t" + rand.Text()
	memdb.Create(name, nil)
	t.Cleanup(func() { memdb.Delete(name) })
	return "/" + name, "memdb"
}
