package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncengine/httpsync"
)

// itemsSchema is the app schema of the end-to-end tests.
func itemsSchema() *syncengine.Schema {
	return &syncengine.Schema{Version: 1, Collections: map[string]syncengine.Collection{
		"items": {Fields: map[string]syncengine.FieldType{
			"title": syncengine.TypeText, "n": syncengine.TypeInteger, "done": syncengine.TypeBoolean, "tags": syncengine.TypeJSON,
		}},
	}}
}

// client is one engine (its own database file) syncing with a server.
type client struct {
	*syncengine.Engine
	sync *syncengine.Syncer
	name string
}

// fastSync retries quickly, so fault-heavy tests finish in seconds.
func fastSync(url string) syncengine.SyncOptions {
	return syncengine.SyncOptions{
		Transport:      &httpsync.Transport{URL: url, Token: devToken},
		PushBatch:      20,
		PullLimit:      7,
		PullInterval:   150 * time.Millisecond,
		RequestTimeout: 3 * time.Second,
		MinBackoff:     10 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
	}
}

func newClient(t *testing.T, name, url string, opts ...func(*syncengine.Options)) *client {
	t.Helper()
	o := syncengine.Options{Path: filepath.Join(t.TempDir(), name+".db"), Schema: itemsSchema()}
	for _, f := range opts {
		f(&o)
	}
	e, err := syncengine.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { e.Close() })
	c := &client{Engine: e, name: name}
	if url != "" {
		if c.sync, err = e.StartSync(fastSync(url)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// rows returns the client's visible items, for comparison.
func (c *client) rows(t *testing.T) string {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT id, title, n, done, tags, _updated_at FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rows.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func (c *client) pending(t *testing.T) int {
	t.Helper()
	n, err := c.PendingCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
