// Package e2e holds end-to-end tests of opfsync: engines (pkg/syncengine)
// syncing over HTTP on loopback with a real opfsync server (pkg/syncserver
// and its SQLite store), through a fault-injecting proxy. It has no
// non-test code beyond this comment.
package e2e
