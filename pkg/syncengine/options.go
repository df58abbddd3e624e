package syncengine

import "time"

// Options configure Open.
type Options struct {
	// Path names the database: a file path, or a "file:" URI. With VFS set,
	// Path is the name inside that VFS.
	Path string
	// VFS selects a registered SQLite VFS by name ("" is the default OS
	// VFS; "memdb" keeps the database in memory; the browser passes its
	// OPFS VFS).
	VFS string
	// Schema is the app's declared data model. Nil keeps whatever schema the
	// database already has.
	Schema *Schema
	// Now is the wall clock (for HLC stamps); nil uses time.Now.
	Now func() time.Time
	// CacheSizeKiB is SQLite's page cache per connection; 0 picks 16 MiB.
	CacheSizeKiB int
}

func (o *Options) now() int64 {
	if o.Now != nil {
		return o.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}
