package bridge

import (
	"crypto/rand"

	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// OpenMemory returns storage for storage: "memory": a fresh in-memory
// database (memdb), gone when the store closes or the worker ends.
func OpenMemory(name string) Storage {
	key := "opfsync-" + name + "-" + rand.Text()
	memdb.Create(key, nil)
	return Storage{Path: "/" + key, VFS: "memdb", Kind: "memory", Close: func() error {
		memdb.Delete(key)
		return nil
	}}
}
