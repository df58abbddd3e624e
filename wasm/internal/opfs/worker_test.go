//go:build js && wasm

package opfs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hack-pad/safejs"
)

// The locked case across contexts: a nested dedicated worker (another JS
// context, as another tab's worker would be) holds the database's main
// file; Open here fails fast with ErrLocked, and works again once that
// worker closed the handle or was terminated.

const holderJS = `
onmessage = async (e) => {
  const { dir, name, busy } = e.data;
  if (e.data.release) { self.h.close(); postMessage('released'); return; }
  try {
    let d = await navigator.storage.getDirectory();
    for (const seg of dir.split('/')) d = await d.getDirectoryHandle(seg, { create: true });
    const fh = await d.getFileHandle(name, { create: true });
    self.h = await fh.createSyncAccessHandle();
    postMessage('held');
    if (busy) { const end = Date.now() + 5000; while (Date.now() < end) {} }
  } catch (err) {
    postMessage('error: ' + err.name + ': ' + err.message);
  }
};`

// holder is a nested worker that holds one OPFS file.
type holder struct {
	w    safejs.Value
	msgs chan string
	fn   safejs.Func
}

func startHolder(t *testing.T, dir, name string, busy bool) *holder {
	t.Helper()
	g := safejs.Global()
	blobCtor, _ := g.Get("Blob")
	opts, _ := safejs.ValueOf(map[string]any{"type": "text/javascript"})
	blob, err := blobCtor.New([]any{holderJS}, opts)
	if err != nil {
		t.Fatal(err)
	}
	urlCtor, _ := g.Get("URL")
	u, err := urlCtor.Call("createObjectURL", blob)
	if err != nil {
		t.Fatal(err)
	}
	workerCtor, _ := g.Get("Worker")
	w, err := workerCtor.New(u)
	if err != nil {
		t.Skipf("no nested workers here: %v", err)
	}
	h := &holder{w: w, msgs: make(chan string, 4)}
	h.fn, _ = safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		d, _ := args[0].Get("data")
		s, _ := d.String()
		h.msgs <- s
		return nil
	})
	w.Set("onmessage", h.fn)
	t.Cleanup(func() {
		h.w.Call("terminate")
		h.fn.Release()
	})
	msg, _ := safejs.ValueOf(map[string]any{"dir": dir, "name": name, "busy": busy})
	if _, err := w.Call("postMessage", msg); err != nil {
		t.Fatal(err)
	}
	if got := h.wait(t); got != "held" {
		t.Fatalf("holder worker: %s", got)
	}
	return h
}

func (h *holder) wait(t *testing.T) string {
	t.Helper()
	select {
	case m := <-h.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("holder worker did not answer")
		return ""
	}
}

// openWhenFree retries Open until the file is free and reports how long
// that took.
func openWhenFree(t *testing.T, name string, limit time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		db, err := Open(context.Background(), testDir, name)
		if err == nil {
			db.Close()
			return time.Since(t0)
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("Open while waiting for the holder to go: %v", err)
		}
		if time.Since(t0) > limit {
			t.Fatalf("still locked %v after the holder went", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLockedByAnotherWorker(t *testing.T) {
	requireOPFS(t)
	ctx := context.Background()
	name := testName(t)
	t.Cleanup(func() { Delete(ctx, testDir, name) })

	h := startHolder(t, testDir, name, false)
	var worst time.Duration
	for range 5 {
		t0 := time.Now()
		db, err := Open(ctx, testDir, name)
		worst = max(worst, time.Since(t0))
		if err == nil {
			db.Close()
			t.Fatal("Open succeeded while another worker holds the file")
		}
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "NoModificationAllowedError") {
			t.Fatalf("Open while held elsewhere: %v, want ErrLocked (NoModificationAllowedError)", err)
		}
	}
	t.Logf("Open of a database another worker holds fails in at most %v", worst)
	if worst > time.Second {
		t.Errorf("locked Open took %v; it must fail fast", worst)
	}

	// The holder closes its handle: free at once.
	m, _ := safejs.ValueOf(map[string]any{"release": true})
	h.w.Call("postMessage", m)
	if got := h.wait(t); got != "released" {
		t.Fatalf("holder: %s", got)
	}
	t.Logf("after the holder closed its handle, Open works in %v", openWhenFree(t, name, 2*time.Second))

	// An idle holder terminated (a closed tab): how soon is the file free?
	h = startHolder(t, testDir, name, false)
	h.w.Call("terminate")
	t.Logf("after an idle holder was terminated, Open works in %v", openWhenFree(t, name, 5*time.Second))

	// A busy holder terminated (a worker in the middle of work).
	h = startHolder(t, testDir, name, true)
	h.w.Call("terminate")
	t.Logf("after a busy holder was terminated, Open works in %v", openWhenFree(t, name, 10*time.Second))
}
