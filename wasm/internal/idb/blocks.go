//go:build js && wasm

package idb

import (
	"errors"
	"fmt"
	"io"

	"github.com/opfsync/opfsync/wasm/internal/vfskit"
)

// blockFile is one file of the database in memory: its current size, the
// blocks written since the last sync (dirty, pinned) and a cache of clean
// blocks read from IndexedDB. The caller holds db.mu.
type blockFile struct {
	db    *DB
	kind  vfskit.Kind
	size  int64 // current size
	saved int64 // size IndexedDB holds

	blocks map[int64][]byte // cached blocks, dirty or clean
	dirty  map[int64]bool
	cut    int64 // blocks from here on are gone: delete them at the next sync (-1: none)

	locks vfskit.Locks // SQLite lock bookkeeping of this process's connections
}

var errClosed = errors.New("idb: the database was closed (DB.Close) while SQLite still used it")

// numBlocks is how many blocks hold size bytes.
func numBlocks(size int64) int64 { return (size + blockSize - 1) / blockSize }

// block returns block i (i < numBlocks(f.size)), loading it, and the blocks
// after it, from IndexedDB when it is not in memory. The block stays in
// memory until the next call of block (which may evict clean blocks).
func (f *blockFile) block(i int64) ([]byte, error) {
	if b, ok := f.blocks[i]; ok {
		return b, nil
	}
	if f.db.closed {
		return nil, errClosed
	}
	// Make room first, so the blocks loaded now stay until the caller
	// used them.
	f.db.evict()
	end := min(i+readAhead, numBlocks(f.size))
	if f.cut >= 0 {
		// Blocks past a pending cut are stale in IndexedDB.
		end = min(end, f.cut)
	}
	var stored map[int64][]byte
	if i < end {
		var err error
		f.db.stats.loads++
		if stored, err = f.db.js.load(f.db.conn, int(f.kind), i, end); err != nil {
			return nil, fmt.Errorf("idb: read %s block %d: %w", f.name(), i, err)
		}
	}
	for j := i; j < max(end, i+1); j++ {
		if _, ok := f.blocks[j]; ok {
			continue
		}
		b := stored[j]
		if b == nil {
			b = make([]byte, blockSize) // never written: zeros
		}
		f.blocks[j] = b
		f.db.clean.add(f.kind, j)
	}
	return f.blocks[i], nil
}

func (f *blockFile) name() string { return f.db.idbName + vfskit.Suffixes[f.kind] }

// readAt reads at off; past the end of the file it zero-fills the rest of
// p and returns io.EOF (SQLite's short read).
func (f *blockFile) readAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= f.size {
			clear(p[n:])
			return n, io.EOF
		}
		b, err := f.block(at / blockSize)
		if err != nil {
			return n, err
		}
		m := copy(p[n:min(len(p), n+int(f.size-at))], b[at%blockSize:])
		n += m
	}
	return n, nil
}

// writeAt writes p at off into memory; the next sync stores it.
func (f *blockFile) writeAt(p []byte, off int64) (int, error) {
	if f.db.closed {
		return 0, errClosed
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		i, in := at/blockSize, at%blockSize
		whole := in == 0 && len(p)-n >= blockSize
		var b []byte
		if whole || at >= numBlocks(f.size)*blockSize {
			// Overwritten whole, or past the last block: nothing to load.
			if b = f.blocks[i]; b == nil {
				b = make([]byte, blockSize)
				f.blocks[i] = b
			}
		} else {
			var err error
			if b, err = f.block(i); err != nil {
				return n, err
			}
		}
		n += copy(b[in:], p[n:])
		f.markDirty(i)
	}
	f.size = max(f.size, off+int64(len(p)))
	return n, nil
}

func (f *blockFile) markDirty(i int64) {
	if !f.dirty[i] {
		f.dirty[i] = true
		f.db.clean.drop(f.kind, i)
	}
}

// truncate sets the size. Shrinking drops the blocks past the end (deleted
// from IndexedDB at the next sync) and zeroes the tail of the last block,
// so growing again later reads zeros.
func (f *blockFile) truncate(size int64) error {
	if f.db.closed {
		return errClosed
	}
	if size >= f.size {
		f.size = size
		return nil
	}
	keep := numBlocks(size)
	if in := size % blockSize; in != 0 {
		b, err := f.block(keep - 1)
		if err != nil {
			return err
		}
		clear(b[in:])
		f.markDirty(keep - 1)
	}
	for i := range f.blocks {
		if i >= keep {
			delete(f.blocks, i)
			delete(f.dirty, i)
			f.db.clean.drop(f.kind, i)
		}
	}
	if f.cut < 0 || keep < f.cut {
		f.cut = keep
	}
	f.size = size
	return nil
}

// changed reports whether the file differs from what IndexedDB holds.
func (f *blockFile) changed() bool { return len(f.dirty) > 0 || f.cut >= 0 || f.size != f.saved }

// flush stores every change of every file in one IndexedDB transaction and
// returns when it committed. On failure nothing is stored and the changes
// stay pending (the next sync tries again). The caller holds db.mu.
func (db *DB) flush() error {
	if db.closed {
		return errClosed
	}
	var keys, cuts, sizes []any
	n := 0
	for _, f := range db.files {
		n += len(f.dirty)
	}
	data := make([]byte, 0, n*blockSize)
	for _, f := range db.files {
		if !f.changed() {
			continue
		}
		if f.cut >= 0 {
			cuts = append(cuts, int(f.kind), f.cut)
		}
		for i := range f.dirty {
			keys = append(keys, int(f.kind), i)
			data = append(data, f.blocks[i]...)
		}
		sizes = append(sizes, int(f.kind), f.size)
	}
	if sizes == nil {
		return nil
	}
	db.stats.commits++
	if err := db.js.commit(db.conn, data, keys, cuts, sizes); err != nil {
		return fmt.Errorf("idb: write %s: %w", db.idbName, err)
	}
	for _, f := range db.files {
		for i := range f.dirty {
			db.clean.add(f.kind, i)
		}
		clear(f.dirty)
		f.cut = -1
		f.saved = f.size
	}
	db.evict()
	return nil
}

// cleanQueue remembers the order clean blocks entered the cache, oldest
// first, so the cache evicts the oldest (FIFO: cheap, and SQLite's own
// page cache above already keeps the hot pages).
type cleanQueue struct {
	order []blockRef
	in    map[blockRef]bool
}

type blockRef struct {
	kind vfskit.Kind
	i    int64
}

func (q *cleanQueue) add(k vfskit.Kind, i int64) {
	if q.in == nil {
		q.in = map[blockRef]bool{}
	}
	r := blockRef{k, i}
	if !q.in[r] {
		q.in[r] = true
		q.order = append(q.order, r)
	}
}

// drop forgets a block that became dirty or was truncated away.
func (q *cleanQueue) drop(k vfskit.Kind, i int64) { delete(q.in, blockRef{k, i}) }

// evict drops the oldest clean blocks while there are more than maxClean.
func (db *DB) evict() {
	q := &db.clean
	for len(q.in) > maxClean && len(q.order) > 0 {
		r := q.order[0]
		q.order = q.order[1:]
		if q.in[r] {
			delete(q.in, r)
			delete(db.files[r.kind].blocks, r.i)
		}
	}
	if len(q.order) > 4*maxClean {
		// Compact entries of blocks that left the queue by drop.
		live := q.order[:0]
		for _, r := range q.order {
			if q.in[r] {
				live = append(live, r)
			}
		}
		q.order = live
	}
}
