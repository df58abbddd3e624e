// Package e2e holds end-to-end tests of opfsync: engines (pkg/syncengine)
// syncing over HTTP on loopback with a real opfsync server (pkg/syncserver
// and its SQLite store, or several opfsync-server processes sharing one
// throwaway PostgreSQL database from internal/pgtest), through
// fault-injecting proxies and a failover load balancer. It has no non-test
// code beyond this comment.
package e2e
