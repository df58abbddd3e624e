package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opfsync/opfsync/internal/serverproc"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// shutdownWait is how long a SIGTERMed server may take to exit (its own
// limit for requests in flight is 25 s).
const shutdownWait = 40 * time.Second

// run is the whole soak: start the server, load it, stop it, verify, report.
// An error means the run could not be carried out; a finished run that
// found problems returns a Result with Passed false.
func run(ctx context.Context, cfg Config) (*Result, error) {
	started := time.Now()
	if cfg.Seed == 0 {
		cfg.Seed = started.UnixNano()
	}
	res := &Result{Config: cfg.summary(), Machine: machine(ctx), LoadBefore: loadAvg(), StartedAt: started.UTC().Format(time.RFC3339)}
	if _, err := os.Stat(cfg.Server); err != nil {
		return nil, fmt.Errorf("server binary: %w (build it with make server)", err)
	}
	dir, err := os.MkdirTemp("", "opfsync-soak-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	keep := cfg.Keep
	defer func() {
		if keep {
			fmt.Fprintln(os.Stderr, "soak: kept", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	l := newLedger(cfg.Users())
	tokens := filepath.Join(dir, "tokens.json")
	if err := writeTokens(tokens, l); err != nil {
		return nil, err
	}
	dbPath, logPath := filepath.Join(dir, "soak.db"), filepath.Join(dir, "server.log")

	srv, err := serverproc.Start(ctx, cfg.Server, logPath, "-addr", "127.0.0.1:0", "-db", dbPath, "-tokens", tokens)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "soak: server pid %d at %s; %d clients (%d hammering, %d users) for %s\n",
		srv.Pid(), srv.URL, cfg.Clients, cfg.Hammer, cfg.Users(), cfg.Duration)
	mem := sampleMem(srv.Pid(), time.Second)
	cpuBefore, _ := readCPU(srv.Pid())
	w := newWire(srv.URL, 2*cfg.Clients+16)

	elapsed := load(ctx, cfg, w, l)
	w.close()

	cpuAfter, err := readCPU(srv.Pid())
	if err != nil {
		cpuAfter = cpuBefore // the server is gone: no figure
	}
	hwm, maxRSS, finalRSS, samples := mem.Stop(srv.Pid())
	exit, took, stopErr := srv.Stop(shutdownWait)
	res.Load = loadFigures(l, w, elapsed)
	res.Server = ServerFigures{
		PeakRSS: hwm, MaxSampledRSS: maxRSS, FinalRSS: finalRSS, MemSamples: samples,
		CPUSeconds: (cpuAfter - cpuBefore).Seconds(), CPUPercent: 100 * (cpuAfter - cpuBefore).Seconds() / elapsed.Seconds(),
		DBBytes: fileSize(dbPath), WALBytes: fileSize(dbPath + "-wal"),
		ExitCode: exit, ShutdownSeconds: took.Seconds(), LogProblems: srv.Problems(),
	}
	if stopErr != nil {
		res.Server.StopError = stopErr.Error()
	}
	res.Errors, res.ErrorExamples = l.errorCounts()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	fmt.Fprintln(os.Stderr, "soak: load done; verifying")
	res.Checks, err = verify(ctx, cfg, dbPath, logPath, l)
	if err != nil {
		keep = true
		return nil, fmt.Errorf("verify: %w", err)
	}
	res.LoadAfter = loadAvg()
	res.TotalSeconds = time.Since(started).Seconds()
	res.judge()
	if !res.Passed {
		keep = true
	}
	if err := res.write(os.Stdout, cfg.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// load runs every simulated client for cfg.Duration and waits for the
// requests in flight; it returns how long that took.
func load(ctx context.Context, cfg Config, w *wire, l *ledger) time.Duration {
	loadCtx, cancelLoad := context.WithTimeout(ctx, cfg.Duration)
	defer cancelLoad()
	streamCtx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	hammerSet := map[int]bool{}
	for i := range cfg.Hammer {
		hammerSet[i*cfg.Clients/cfg.Hammer] = true
	}
	var clients, streams sync.WaitGroup
	start := time.Now()
	for i := range cfg.Clients {
		c := &simClient{
			id:         fmt.Sprintf("soak-c%04d", i),
			user:       l.users[i/cfg.ClientsPerUser],
			w:          w,
			l:          l,
			rng:        newRand(cfg.Seed, i),
			hammer:     hammerSet[i],
			shared:     cfg.SharedRecords,
			rejectRate: cfg.RejectRate,
			retryRate:  cfg.RetryRate,
			raceRate:   cfg.RaceRate,
			thinkMin:   cfg.ThinkMin,
			thinkMax:   cfg.ThinkMax,
			pullLimit:  cfg.PullLimit,
		}
		c.events = !c.hammer && (i*cfg.EventsPercent)%100 < cfg.EventsPercent
		c.clock = protocol.NewClock(c.id, func() int64 { return time.Now().UnixMilli() })
		c.streams = &streams
		clients.Go(func() { c.run(loadCtx, ctx, streamCtx) })
	}
	clients.Wait()
	elapsed := time.Since(start)
	cancelStreams()
	streams.Wait()
	return elapsed
}

// writeTokens writes the -tokens file: one token per user.
func writeTokens(path string, l *ledger) error {
	m := make(map[string]string, len(l.users))
	for _, u := range l.users {
		m[u.Token] = u.Name
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	return nil
}

// fileSize is the size of the file at path, 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
