package main

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Slow clients do not pin the server: connections that trickle their
// headers are closed after the header timeout, and while many of them are
// open a normal request is answered at once.
func TestSlowClientsAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's 10 s header timeout")
	}
	bin := buildServer(t)
	cmd, url, _ := startServer(t, bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "s.db"), "-token", "dev-tok")
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := strings.TrimPrefix(url, "http://")

	const slow = 50
	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, slow)
	start := time.Now()
	for i := 0; i < slow; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A request line, then one header byte per second, never the end
			// of the headers.
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
				return
			}
			go func() {
				for range 30 {
					if _, err := io.WriteString(conn, "X"); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			conn.SetReadDeadline(time.Now().Add(25 * time.Second))
			io.Copy(io.Discard, conn) // returns when the server closes the connection
			closedAfter <- time.Since(start)
		}()
	}

	// Meanwhile a normal client is served at once.
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(t0) > 2*time.Second {
		t.Fatalf("healthz with %d slow clients connected: %d after %v", slow, resp.StatusCode, time.Since(t0))
	}

	wg.Wait()
	close(closedAfter)
	for d := range closedAfter {
		if d > 15*time.Second {
			t.Fatalf("a slow client was kept for %v; the header timeout is %v", d, defaultTimeouts.readHeader)
		}
	}
}
