package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	be, err := openBackend(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	defer be.close()
	res.Store = be.info

	srvs, err := startServers(ctx, cfg, be, dir, tokens)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "soak: %s; %d clients (%d hammering, %d users) for %s\n",
		serversText(srvs), cfg.Clients, cfg.Hammer, cfg.Users(), cfg.Duration)
	mems := make([]*memSampler, len(srvs))
	cpuBefore := make([]time.Duration, len(srvs))
	wires := make([]*wire, len(srvs))
	for i, srv := range srvs {
		mems[i] = sampleMem(srv.Pid(), time.Second)
		cpuBefore[i], _ = readCPU(srv.Pid())
		// Each instance's pool holds a connection for every client of it.
		conns := 2*((cfg.Clients+len(srvs)-1)/len(srvs)) + 16
		if i == 0 {
			wires[i] = newWire(srv.URL, conns)
		} else {
			wires[i] = wires[0].sibling(srv.URL, conns)
		}
	}
	var pgMem *treeSampler
	var pgCPUBefore time.Duration
	if pid := be.pid(); pid != 0 {
		pgMem = sampleTree(pid, time.Second)
		pgCPUBefore, _ = treeCPU(pid)
	}

	machineBefore, _ := machineCPU()
	selfBefore, _ := readCPU(os.Getpid())
	elapsed := load(ctx, cfg, wires, l)
	machineAfter, _ := machineCPU()
	selfAfter, _ := readCPU(os.Getpid())
	for _, w := range wires {
		w.close()
	}

	if pid := be.pid(); pid != 0 {
		pgCPUAfter, err := treeCPU(pid)
		if err != nil {
			pgCPUAfter = pgCPUBefore
		}
		peak, procs, samples := pgMem.Stop(pid)
		cpu := (pgCPUAfter - pgCPUBefore).Seconds()
		res.Postgres = &PostgresFigures{PeakPSS: peak, Processes: procs, MemSamples: samples, CPUSeconds: cpu, CPUPercent: 100 * cpu / elapsed.Seconds()}
	}
	res.Server = ServerFigures{}
	for i, srv := range srvs {
		cpuAfter, err := readCPU(srv.Pid())
		if err != nil {
			cpuAfter = cpuBefore[i] // the server is gone: no figure
		}
		hwm, maxRSS, finalRSS, samples := mems[i].Stop(srv.Pid())
		exit, took, stopErr := srv.Stop(shutdownWait)
		inst := InstanceFigures{
			Pid: srv.Pid(), PeakRSS: hwm, MaxSampledRSS: maxRSS, FinalRSS: finalRSS, MemSamples: samples,
			CPUSeconds: (cpuAfter - cpuBefore[i]).Seconds(), ExitCode: exit, ShutdownSeconds: took.Seconds(),
		}
		if stopErr != nil {
			inst.StopError = stopErr.Error()
		}
		res.Server.add(inst, srv.Problems(), len(srvs) > 1, i)
	}
	res.Server.CPUPercent = 100 * res.Server.CPUSeconds / elapsed.Seconds()
	res.MachineCPU = machineFigures(elapsed, machineAfter-machineBefore, selfAfter-selfBefore, res.Server.CPUSeconds, res.Postgres)
	res.Server.DBBytes, res.Server.WALBytes = be.size(ctx)
	res.Load = loadFigures(l, wires[0], elapsed)
	res.Errors, res.ErrorExamples = l.errorCounts()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	fmt.Fprintln(os.Stderr, "soak: load done; verifying")
	res.Checks, err = verify(ctx, cfg, be, dir, tokens, l)
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

// startServers starts cfg.Instances servers on the store, each logging to
// a file of its own in dir (server.log, or server-1.log, server-2.log, ...).
// When one fails to start, those already started are stopped.
func startServers(ctx context.Context, cfg Config, be *backend, dir, tokens string) ([]*serverproc.Proc, error) {
	var srvs []*serverproc.Proc
	for i := range cfg.Instances {
		args := append([]string{"-addr", "127.0.0.1:0", "-tokens", tokens}, be.serverArgs()...)
		srv, err := serverproc.Start(ctx, cfg.Server, serverLog(dir, i, cfg.Instances), args...)
		if err != nil {
			for _, s := range srvs {
				s.Kill()
			}
			return nil, err
		}
		srvs = append(srvs, srv)
	}
	return srvs, nil
}

// serverLog is the log file of instance i of n.
func serverLog(dir string, i, n int) string {
	if n == 1 {
		return filepath.Join(dir, "server.log")
	}
	return filepath.Join(dir, fmt.Sprintf("server-%d.log", i+1))
}

// serversText lists the servers' pids and URLs.
func serversText(srvs []*serverproc.Proc) string {
	parts := make([]string, len(srvs))
	for i, s := range srvs {
		parts[i] = fmt.Sprintf("pid %d at %s", s.Pid(), s.URL)
	}
	if len(srvs) == 1 {
		return "server " + parts[0]
	}
	return fmt.Sprintf("%d servers: %s", len(srvs), strings.Join(parts, ", "))
}

// load runs every simulated client for cfg.Duration and waits for the
// requests in flight; it returns how long that took. Client i talks to the
// server of wires[i % len(wires)], so one user's clients (consecutive
// numbers) are spread over the instances, and sends its pushes again to
// the next one.
func load(ctx context.Context, cfg Config, wires []*wire, l *ledger) time.Duration {
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
			w:          wires[i%len(wires)],
			other:      wires[(i+1)%len(wires)],
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
