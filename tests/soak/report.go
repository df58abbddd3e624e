package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Result is everything a soak run measured and checked; it is written as
// soak.json and rendered as soak.md.
type Result struct {
	StartedAt     string            `json:"startedAt"`
	TotalSeconds  float64           `json:"totalSeconds"`
	Machine       Machine           `json:"machine"`
	LoadBefore    string            `json:"loadavgBefore"`
	LoadAfter     string            `json:"loadavgAfter"`
	Config        ConfigSummary     `json:"config"`
	Store         StoreInfo         `json:"store"`
	Load          LoadFigures       `json:"load"`
	Server        ServerFigures     `json:"server"`
	Postgres      *PostgresFigures  `json:"postgres,omitempty"` // the throwaway cluster's processes
	MachineCPU    MachineCPU        `json:"machineCpu"`
	Errors        map[string]int    `json:"errors"`
	ErrorExamples map[string]string `json:"errorExamples"`
	Checks        *Checks           `json:"checks"`
	Passed        bool              `json:"passed"`
	Failures      []string          `json:"failures"`
}

// ConfigSummary is the part of the configuration a reader needs.
type ConfigSummary struct {
	Clients        int     `json:"clients"`
	Hammer         int     `json:"hammer"`
	Users          int     `json:"users"`
	ClientsPerUser int     `json:"clientsPerUser"`
	SharedRecords  int     `json:"sharedRecordsPerUser"`
	DurationSec    float64 `json:"durationSeconds"`
	Think          string  `json:"think"`
	EventsPercent  int     `json:"eventsPercent"`
	RetryRate      float64 `json:"retryRate"`
	RaceRate       float64 `json:"raceRate"`
	RejectRate     float64 `json:"rejectRate"`
	PullLimit      int     `json:"pullLimit"`
	Seed           int64   `json:"seed"`
}

func (c Config) summary() ConfigSummary {
	return ConfigSummary{
		Clients: c.Clients, Hammer: c.Hammer, Users: c.Users(), ClientsPerUser: c.ClientsPerUser,
		SharedRecords: c.SharedRecords, DurationSec: c.Duration.Seconds(),
		Think: c.ThinkMin.String() + "–" + c.ThinkMax.String(), EventsPercent: c.EventsPercent,
		RetryRate: c.RetryRate, RaceRate: c.RaceRate, RejectRate: c.RejectRate, PullLimit: c.PullLimit, Seed: c.Seed,
	}
}

// LoadFigures are the throughput and latency of the load phase.
type LoadFigures struct {
	Seconds        float64        `json:"seconds"` // from the first client's start to the last answer
	MutationsSent  int64          `json:"mutationsSent"`
	Applied        int64          `json:"applied"`
	Duplicates     int64          `json:"duplicates"`
	Rejected       int64          `json:"rejected"`
	LostFields     int64          `json:"lwwLostFields"`
	MutationsPerS  float64        `json:"appliedMutationsPerSecond"`
	Batches        int64          `json:"batches"`
	PushRequests   int64          `json:"pushRequests"`
	Retries        int64          `json:"retriedBatches"`
	Races          int64          `json:"racedBatches"`
	PushesPerS     float64        `json:"pushesPerSecond"`
	PullRequests   int64          `json:"pullRequests"`
	PullsPerS      float64        `json:"pullsPerSecond"`
	PulledRecords  int64          `json:"pulledRecords"`
	Pokes          int64          `json:"pokes"`
	PushLatency    LatencySummary `json:"pushLatency"`
	PullLatency    LatencySummary `json:"pullLatency"`
	MeanBatchSize  float64        `json:"meanBatchSize"`
	PulledPerPullS float64        `json:"pulledRecordsPerSecond"`
}

func loadFigures(l *ledger, w *wire, elapsed time.Duration) LoadFigures {
	s := elapsed.Seconds()
	f := LoadFigures{
		Seconds:       s,
		MutationsSent: l.validSent.Load() + l.invalidSent.Load(),
		Applied:       l.applied.Load(),
		Duplicates:    l.duplicates.Load(),
		Rejected:      l.rejected.Load(),
		LostFields:    l.lostFields.Load(),
		Batches:       l.batches.Load(),
		PushRequests:  l.pushRequests.Load(),
		Retries:       l.retries.Load(),
		Races:         l.races.Load(),
		PullRequests:  l.pullRequests.Load(),
		PulledRecords: l.pulledRecs.Load(),
		Pokes:         l.pokes.Load(),
		PushLatency:   w.pushLat.summary(),
		PullLatency:   w.pullLat.summary(),
	}
	f.MutationsPerS = float64(f.Applied) / s
	f.PushesPerS = float64(f.PushRequests) / s
	f.PullsPerS = float64(f.PullRequests) / s
	f.PulledPerPullS = float64(f.PulledRecords) / s
	if f.Batches > 0 {
		f.MeanBatchSize = float64(f.MutationsSent) / float64(f.Batches)
	}
	return f
}

// ServerFigures are the server processes' resources: with several
// instances, memory and CPU are summed over them (each one's in Instances).
type ServerFigures struct {
	PeakRSS         int64             `json:"peakRssBytes"`       // VmHWM at the end of the load (summed)
	MaxSampledRSS   int64             `json:"maxSampledRssBytes"` // largest VmRSS of the 1 s samples (summed)
	FinalRSS        int64             `json:"finalRssBytes"`      // VmRSS at the end of the load (summed)
	MemSamples      int               `json:"memSamples"`
	CPUSeconds      float64           `json:"cpuSeconds"`          // user+system during the load (summed)
	CPUPercent      float64           `json:"cpuPercent"`          // of one core
	DBBytes         int64             `json:"dbBytes"`             // after the graceful stop (PostgreSQL: pg_database_size)
	WALBytes        int64             `json:"walBytes"`            // SQLite's WAL file
	ExitCode        int               `json:"exitCode"`            // the first non-zero one
	StopError       string            `json:"stopError,omitempty"` // a server did not exit by itself
	ShutdownSeconds float64           `json:"shutdownSeconds"`     // the longest
	LogProblems     []string          `json:"logProblems"`         // WARN/ERROR lines
	Instances       []InstanceFigures `json:"instances"`
}

// InstanceFigures are one server process's resources.
type InstanceFigures struct {
	Pid             int     `json:"pid"`
	PeakRSS         int64   `json:"peakRssBytes"`
	MaxSampledRSS   int64   `json:"maxSampledRssBytes"`
	FinalRSS        int64   `json:"finalRssBytes"`
	MemSamples      int     `json:"memSamples"`
	CPUSeconds      float64 `json:"cpuSeconds"`
	ExitCode        int     `json:"exitCode"`
	StopError       string  `json:"stopError,omitempty"`
	ShutdownSeconds float64 `json:"shutdownSeconds"`
}

// add counts instance i's figures and log problems in the totals
// (prefixing the problems with the instance's number when there are
// several).
func (s *ServerFigures) add(f InstanceFigures, problems []string, several bool, i int) {
	s.Instances = append(s.Instances, f)
	s.PeakRSS += f.PeakRSS
	s.MaxSampledRSS += f.MaxSampledRSS
	s.FinalRSS += f.FinalRSS
	s.MemSamples = max(s.MemSamples, f.MemSamples)
	s.CPUSeconds += f.CPUSeconds
	s.ShutdownSeconds = max(s.ShutdownSeconds, f.ShutdownSeconds)
	if s.ExitCode == 0 {
		s.ExitCode = f.ExitCode
	}
	prefix := ""
	if several {
		prefix = fmt.Sprintf("instance %d: ", i+1)
	}
	if f.StopError != "" {
		s.StopError = strings.TrimPrefix(s.StopError+"; "+prefix+f.StopError, "; ")
	}
	for _, p := range problems {
		s.LogProblems = append(s.LogProblems, prefix+p)
	}
}

// PostgresFigures are the resources of the PostgreSQL cluster the soak
// started, all its processes (postmaster, backends, background workers)
// together.
type PostgresFigures struct {
	PeakPSS    int64   `json:"peakPssBytes"` // largest 1 s sample of the processes' summed PSS
	Processes  int     `json:"processes"`    // processes in that sample
	MemSamples int     `json:"memSamples"`
	CPUSeconds float64 `json:"cpuSeconds"` // user+system during the load, exited backends included
	CPUPercent float64 `json:"cpuPercent"` // of one core
}

// MachineCPU is where the machine's CPU went during the load, in percent
// of one core (a 2-core machine has 200): the load generator (this
// process), the servers, the PostgreSQL cluster the soak started, and
// every other process (Other: busy minus those, other work on the
// machine included).
type MachineCPU struct {
	Busy      float64 `json:"busyPercent"`
	Generator float64 `json:"generatorPercent"`
	Servers   float64 `json:"serversPercent"`
	Postgres  float64 `json:"postgresPercent"`
	Other     float64 `json:"otherPercent"`
}

func machineFigures(elapsed, busy, self time.Duration, serverSeconds float64, pg *PostgresFigures) MachineCPU {
	s := elapsed.Seconds()
	m := MachineCPU{Busy: 100 * busy.Seconds() / s, Generator: 100 * self.Seconds() / s, Servers: 100 * serverSeconds / s}
	if pg != nil {
		m.Postgres = pg.CPUPercent
	}
	m.Other = max(0, m.Busy-m.Generator-m.Servers-m.Postgres)
	return m
}

// judge decides whether the run passed and lists why not.
func (r *Result) judge() {
	var f []string
	add := func(format string, args ...any) { f = append(f, fmt.Sprintf(format, args...)) }
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		add("%d × %s (e.g. %s)", r.Errors[k], k, r.ErrorExamples[k])
	}
	if r.Server.StopError != "" {
		add("graceful stop: %s", r.Server.StopError)
	} else if r.Server.ExitCode != 0 {
		add("the server exited %d after SIGTERM (want 0)", r.Server.ExitCode)
	}
	for _, line := range r.Server.LogProblems {
		add("server log: %s", line)
	}
	if c := r.Checks; c != nil {
		if c.StoreApplied != c.ExpectedApplied || c.Uncertain > 0 {
			add("exactly once: the database holds %d applied mutations, the clients pushed %d distinct valid ids (%d without an answer)", c.StoreApplied, c.ExpectedApplied, c.Uncertain)
		}
		if c.AppliedVerdicts != c.ExpectedApplied {
			add("exactly once: the clients got %d applied verdicts for %d distinct valid ids", c.AppliedVerdicts, c.ExpectedApplied)
		}
		if c.StoreRejected != c.ExpectedRejected {
			add("rejections: the database holds %d, the clients pushed %d invalid mutations", c.StoreRejected, c.ExpectedRejected)
		}
		if c.StoreRecords != c.ExpectedRecords || int64(c.PulledRecords) != c.ExpectedRecords {
			add("records: the model has %d, the database %d, the final pulls %d", c.ExpectedRecords, c.StoreRecords, c.PulledRecords)
		}
		if c.Integrity != "ok" {
			add("%s: %s", c.IntegrityCheck, c.Integrity)
		}
		if c.Mismatches > 0 {
			add("%d records differ from the model: %s", c.Mismatches, strings.Join(c.MismatchExamples, "; "))
		}
		if !c.PullsAgree {
			add("two fresh full pulls disagree")
		}
		if c.RestartExitCode != 0 {
			add("the restarted server exited %d after SIGTERM", c.RestartExitCode)
		}
		for _, line := range c.RestartLogProblem {
			add("restarted server log: %s", line)
		}
	}
	if r.Load.Applied == 0 {
		add("no mutation was applied")
	}
	r.Failures, r.Passed = f, len(f) == 0
}

// failureSummary is one line per failure.
func (r *Result) failureSummary() string { return strings.Join(r.Failures, "\n  ") }

// write prints the markdown report to stdout and, when dir is set, writes
// dir/soak.md and dir/soak.json.
func (r *Result) write(stdout io.Writer, dir string) error {
	md := r.markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return fmt.Errorf("print the report: %w", err)
	}
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report folder: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode soak.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write soak.md: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write soak.json: %w", err)
	}
	return nil
}

// markdown renders the report.
func (r *Result) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m, c, ld, s := r.Machine, r.Config, r.Load, r.Server
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	dirty := ""
	if m.Dirty {
		dirty = " (the working tree's cmd/, pkg/ or go.mod differ from it)"
	}
	p("## opfsync-server soak: %s", verdict)
	p("")
	p("%s, commit %s%s; %d CPUs (%s), %s %s; load average %s before, %s after.", r.StartedAt, m.Commit, dirty, m.CPUs, m.CPUModel, m.GoVersion, m.OSArch, r.LoadBefore, r.LoadAfter)
	p("Store: %s.", r.Store.describe())
	p("%d clients (%d without think time, think %s otherwise, %d%% of the paced ones on /sync/events) of %d users (%d shared records each), %.0f s of load, pull pages of %d, seed %d.",
		c.Clients, c.Hammer, c.Think, c.EventsPercent, c.Users, c.SharedRecords, c.DurationSec, c.PullLimit, c.Seed)
	p("")
	p("| measure | value |")
	p("|---|---|")
	p("| applied mutations | %d in %.1f s: **%.0f /s** (mean batch %.1f) |", ld.Applied, ld.Seconds, ld.MutationsPerS, ld.MeanBatchSize)
	p("| push requests | %d: **%.0f /s** (%d batches sent again after the answer, %d twice at once) |", ld.PushRequests, ld.PushesPerS, ld.Retries, ld.Races)
	p("| pull requests | %d: **%.0f /s** (%d records, %.0f /s; %d pokes) |", ld.PullRequests, ld.PullsPerS, ld.PulledRecords, ld.PulledPerPullS, ld.Pokes)
	p("| push latency p50 / p95 / p99 / max | %s |", lat(ld.PushLatency))
	p("| pull latency p50 / p95 / p99 / max | %s |", lat(ld.PullLatency))
	p("| verdicts | %d applied, %d duplicate, %d rejected (deliberately invalid); %d fields lost to a newer write (LWW) |", ld.Applied, ld.Duplicates, ld.Rejected, ld.LostFields)
	p("| errors | %s |", errorsCell(r.Errors))
	if n := len(s.Instances); n > 1 {
		p("| server memory (%d processes, summed) | peak RSS (VmHWM) %s (%s), max sampled VmRSS %s, final VmRSS %s (%d samples) |",
			n, mib(s.PeakRSS), eachMiB(s.Instances), mib(s.MaxSampledRSS), mib(s.FinalRSS), s.MemSamples)
		p("| server CPU (%d processes, summed) | %.1f s during the load (%.0f%% of one core) |", n, s.CPUSeconds, s.CPUPercent)
	} else {
		p("| server memory | peak RSS (VmHWM) %s, max sampled VmRSS %s, final VmRSS %s (%d samples) |", mib(s.PeakRSS), mib(s.MaxSampledRSS), mib(s.FinalRSS), s.MemSamples)
		p("| server CPU | %.1f s during the load (%.0f%% of one core) |", s.CPUSeconds, s.CPUPercent)
	}
	if pg := r.Postgres; pg != nil {
		p("| PostgreSQL memory | peak of the summed PSS of its %d processes %s (%d samples; PSS counts shared buffers once) |", pg.Processes, mib(pg.PeakPSS), pg.MemSamples)
		p("| PostgreSQL CPU | %.1f s during the load (%.0f%% of one core) |", pg.CPUSeconds, pg.CPUPercent)
	}
	if r.Store.Kind == storePostgres {
		p("| server database | %s (pg_database_size) after the graceful stop |", mib(s.DBBytes))
	} else {
		p("| server database | %s (+ WAL %s) after the graceful stop |", mib(s.DBBytes), mib(s.WALBytes))
	}
	mc := r.MachineCPU
	p("| machine CPU during the load | %.0f%% busy of %d%%: load generator %.0f%%, server%s %.0f%%, PostgreSQL %.0f%%, everything else %.0f%% |",
		mc.Busy, 100*m.CPUs, mc.Generator, plural(len(s.Instances)), mc.Servers, mc.Postgres, mc.Other)
	p("| graceful stop | exit %d in %.2f s |", s.ExitCode, s.ShutdownSeconds)
	if ch := r.Checks; ch != nil {
		p("| exactly once | %d applied in the database = %d distinct valid ids pushed; %d rejected = %d invalid pushed |", ch.StoreApplied, ch.ExpectedApplied, ch.StoreRejected, ch.ExpectedRejected)
		p("| integrity | %s: %s |", ch.IntegrityCheck, ch.Integrity)
		from := "a restarted server"
		if n := len(s.Instances); n > 1 {
			from = fmt.Sprintf("%d restarted servers (each user's two pulls from two of them)", n)
		}
		p("| final state | %d records (%d fields) pulled from %s, %d differ from the LWW model; two full pulls agree: %v |", ch.PulledRecords, ch.ComparedFields, from, ch.Mismatches, ch.PullsAgree)
	}
	p("| total run time | %.0f s |", r.TotalSeconds)
	if len(r.Failures) > 0 {
		p("")
		p("Failures:")
		p("")
		for _, f := range r.Failures {
			p("- %s", f)
		}
	}
	return b.String()
}

func lat(l LatencySummary) string {
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.0f ms (%d requests)", l.P50, l.P95, l.P99, l.Max, l.Count)
}

func plural(n int) string {
	if n > 1 {
		return "s"
	}
	return ""
}

// eachMiB lists the instances' peak RSS.
func eachMiB(inst []InstanceFigures) string {
	parts := make([]string, len(inst))
	for i, f := range inst {
		parts[i] = mib(f.PeakRSS)
	}
	return strings.Join(parts, " + ")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func errorsCell(errs map[string]int) string {
	if len(errs) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%d × %s", errs[k], k))
	}
	return "**" + strings.Join(parts, ", ") + "**"
}
