package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSample is a process's memory as /proc/<pid>/status reports it, in
// bytes: VmHWM (peak resident set) and VmRSS (resident set now).
type memSample struct {
	HWM, RSS int64
}

// readMem reads VmHWM and VmRSS of pid.
func readMem(pid int) (memSample, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memSample{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var m memSample
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch name {
		case "VmHWM":
			m.HWM = parseKB(value)
		case "VmRSS":
			m.RSS = parseKB(value)
		}
	}
	return m, nil
}

// parseKB reads a /proc value such as "  12345 kB" as bytes.
func parseKB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n * 1024
}

// readCPU returns the user+system CPU time pid has used so far
// (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s on Linux).
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu time of pid %d: short /proc stat line", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// memSampler samples a process's memory every interval and keeps the
// maxima.
type memSampler struct {
	mu      sync.Mutex
	maxHWM  int64
	maxRSS  int64
	last    memSample
	samples int
	stop    context.CancelFunc
	done    chan struct{}
}

// sampleMem starts sampling pid every interval until Stop.
func sampleMem(pid int, interval time.Duration) *memSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &memSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample(pid)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) sample(pid int) {
	m, err := readMem(pid)
	if err != nil {
		return // the process is gone; the last sample stands
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.samples = m, s.samples+1
	s.maxHWM = max(s.maxHWM, m.HWM)
	s.maxRSS = max(s.maxRSS, m.RSS)
}

// Stop takes one last sample of pid and stops sampling; it returns the peak
// (VmHWM, the kernel's own maximum, and the largest VmRSS sampled), the
// final VmRSS and the number of samples.
func (s *memSampler) Stop(pid int) (peakHWM, maxRSS, finalRSS int64, samples int) {
	s.stop()
	<-s.done
	s.sample(pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxHWM, s.maxRSS, s.last.RSS, s.samples
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	GoVersion string `json:"goVersion"`
	OSArch    string `json:"osArch"`
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirtyWorktree"`
}

// machine collects the CPU count and model, the Go version and the git
// commit of the working tree.
func machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH, CPUModel: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	} else {
		m.Commit = "unknown"
	}
	if out, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no", "--", "cmd", "pkg", "go.mod", "go.sum").Output(); err == nil {
		m.Dirty = len(bytes.TrimSpace(out)) > 0
	}
	return m
}

// loadAvg returns the 1-, 5- and 15-minute load averages from /proc/loadavg.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// readCPUWithChildren returns the CPU time pid has used so far, its own
// (user+system) plus that of its children that have exited and been
// waited for (cutime+cstime, /proc/<pid>/stat fields 16 and 17).
func readCPUWithChildren(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("read cpu time of pid %d: short /proc stat line", pid)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// children returns the process ids whose parent is pid (a scan of /proc).
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(data, ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// treeCPU is the CPU time of pid and its live children so far, with the
// children that have already exited (as pid's reaped time).
func treeCPU(pid int) (time.Duration, error) {
	total, err := readCPUWithChildren(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children(pid) {
		if d, err := readCPU(c); err == nil {
			total += d
		}
	}
	return total, nil
}

// readPSS reads Pss and Rss of pid from /proc/<pid>/smaps_rollup, in
// bytes. Pss (proportional set size) divides each shared page among the
// processes that map it, so summing it over processes that share memory
// (PostgreSQL's shared buffers) counts every page once.
func readPSS(pid int) (pss, rss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch name {
		case "Pss":
			pss = parseKB(value)
		case "Rss":
			rss = parseKB(value)
		}
	}
	return pss, rss, nil
}

// treeSampler samples the summed PSS of a process and its children (the
// postmaster and PostgreSQL's backends and workers) every interval and
// keeps the largest sum.
type treeSampler struct {
	mu       sync.Mutex
	maxPSS   int64
	maxProcs int // processes in the sample of the largest sum
	samples  int
	stop     context.CancelFunc
	done     chan struct{}
}

// sampleTree starts sampling the tree of pid every interval until Stop.
func sampleTree(pid int, interval time.Duration) *treeSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &treeSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample(pid)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *treeSampler) sample(pid int) {
	pss, _, err := readPSS(pid)
	if err != nil {
		return // the process is gone (or not readable): no sample
	}
	procs := 1
	for _, c := range children(pid) {
		if p, _, err := readPSS(c); err == nil {
			pss += p
			procs++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	if pss > s.maxPSS {
		s.maxPSS, s.maxProcs = pss, procs
	}
}

// Stop takes one last sample and stops sampling; it returns the largest
// summed PSS, the number of processes then, and the number of samples.
func (s *treeSampler) Stop(pid int) (maxPSS int64, procs, samples int) {
	s.stop()
	<-s.done
	s.sample(pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxPSS, s.maxProcs, s.samples
}

// machineCPU returns the CPU time every core has spent busy so far (all of
// /proc/stat's first line but idle and iowait), summed over the cores.
func machineCPU() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("read /proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}
