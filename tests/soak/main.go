// Command soak is the load test of the real opfsync-server binary on
// loopback (make soak; see README.md in this folder).
//
// It starts bin/opfsync-server on a fresh SQLite file (or, with -store
// postgres, one or more instances on an empty PostgreSQL database) with one
// bearer token per simulated user, runs hundreds of simulated clients for a
// bounded time (pushing batches of puts, patches and deletes with HLC
// stamps, pulling with their cursors, retrying pushes, holding event
// streams), then stops the servers with SIGTERM and checks that every
// mutation was applied exactly once, that the database passes its integrity
// checks (PRAGMA integrity_check; amcheck and position invariants), and that
// restarted servers return exactly the records the generator's own
// field-level LWW model expects. It prints a markdown report and writes
// bench-results/soak.md and bench-results/soak.json. The exit code is 0 when
// the run had no error and every check passed, 1 otherwise, 2 for a bad
// command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
	if !res.Passed {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", res.failureSummary())
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "soak: PASS")
}
