//go:build !js

package syncengine

import (
	"path/filepath"
	"testing"
)

// newTestDB returns a fresh database location for one test: a file in the
// test's temp dir (natively the real OS VFS is exercised).
func newTestDB(t testing.TB) (path, vfsName string) {
	t.Helper()
	return filepath.Join(t.TempDir(), "opfsync.db"), ""
}
