package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Config is the soak run's command line (flags, with defaults from the
// environment where noted).
type Config struct {
	Server         string        // path of the opfsync-server binary
	Store          string        // "sqlite" or "postgres" (SOAK_STORE)
	Instances      int           // server processes sharing the store (SOAK_INSTANCES; postgres only)
	PostgresURL    string        // an empty PostgreSQL database to use instead of a throwaway cluster (SOAK_POSTGRES_URL)
	PGFsync        bool          // the throwaway cluster runs with fsync on
	PGParams       string        // query parameters added to the servers' PostgreSQL URL (e.g. pool_max_conns=16)
	Clients        int           // simulated clients (SOAK_CLIENTS)
	Duration       time.Duration // load phase length (SOAK_DURATION)
	Hammer         int           // of Clients, how many push without think time (SOAK_HAMMER)
	ClientsPerUser int           // clients sharing one user (token) and its shared records
	SharedRecords  int           // shared records per user (written by all its clients)
	ThinkMin       time.Duration // think time between a paced client's actions
	ThinkMax       time.Duration
	EventsPercent  int     // percentage of paced clients holding a /sync/events stream
	RetryRate      float64 // probability that a push is sent again after its answer
	RaceRate       float64 // probability that a push is sent twice at the same time
	RejectRate     float64 // probability that a mutation is deliberately invalid
	PullLimit      int     // page size of pulls during the load
	Out            string  // folder for soak.md and soak.json ("" = none)
	Keep           bool    // keep the temporary folder (database, server log)
	Seed           int64   // random seed (0 = from the clock)
}

// parseConfig reads the command line; getenv supplies SOAK_* defaults.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Config{}
	clients, err := envInt(getenv, "SOAK_CLIENTS", 200)
	if err != nil {
		return c, err
	}
	hammer, err := envInt(getenv, "SOAK_HAMMER", 4)
	if err != nil {
		return c, err
	}
	dur, err := envDuration(getenv, "SOAK_DURATION", 60*time.Second)
	if err != nil {
		return c, err
	}
	instances, err := envInt(getenv, "SOAK_INSTANCES", 1)
	if err != nil {
		return c, err
	}
	store := getenv("SOAK_STORE")
	if store == "" {
		store = storeSQLite
	}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Server, "server", "bin/opfsync-server", "the opfsync-server binary to run")
	fs.StringVar(&c.Store, "store", store, "the servers' store: sqlite (a fresh file) or postgres (env SOAK_STORE)")
	fs.IntVar(&c.Instances, "instances", instances, "server processes on the one PostgreSQL database, clients spread across them (env SOAK_INSTANCES)")
	fs.StringVar(&c.PostgresURL, "postgres-url", getenv("SOAK_POSTGRES_URL"), "with -store postgres: an empty database to use (it is filled, not emptied afterwards)\n"+
		"instead of a throwaway cluster the soak starts (env SOAK_POSTGRES_URL)")
	fs.BoolVar(&c.PGFsync, "pg-fsync", true, "with -store postgres: run the throwaway cluster with fsync on (commits wait for the disk,\n"+
		"as SQLite's synchronous=FULL does); -pg-fsync=false for fsync off")
	fs.StringVar(&c.PGParams, "pg-params", "", "with -store postgres: parameters added to the servers' connection URL, e.g. pool_max_conns=16")
	fs.IntVar(&c.Clients, "clients", clients, "simulated clients (env SOAK_CLIENTS)")
	fs.DurationVar(&c.Duration, "duration", dur, "length of the load phase (env SOAK_DURATION)")
	fs.IntVar(&c.Hammer, "hammer", hammer, "of -clients, how many push and pull without think time (env SOAK_HAMMER)")
	fs.IntVar(&c.ClientsPerUser, "clients-per-user", 4, "clients per user (bearer token); they share records")
	fs.IntVar(&c.SharedRecords, "shared", 24, "records per user that all its clients write")
	fs.DurationVar(&c.ThinkMin, "think-min", 300*time.Millisecond, "shortest think time of a paced client")
	fs.DurationVar(&c.ThinkMax, "think-max", 1500*time.Millisecond, "longest think time of a paced client")
	fs.IntVar(&c.EventsPercent, "events", 50, "percentage of paced clients that hold /sync/events and pull on each poke")
	fs.Float64Var(&c.RetryRate, "retry-rate", 0.05, "probability that a client sends a push again after its answer")
	fs.Float64Var(&c.RaceRate, "race-rate", 0.01, "probability that a client sends a push twice at the same time")
	fs.Float64Var(&c.RejectRate, "reject-rate", 0.002, "probability that a mutation is deliberately invalid (must be rejected)")
	fs.IntVar(&c.PullLimit, "pull-limit", 200, "page size of the clients' pulls")
	fs.StringVar(&c.Out, "out", "bench-results", `folder for soak.md and soak.json ("" writes none)`)
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary folder (database, tokens, server log)")
	fs.Int64Var(&c.Seed, "seed", 0, "random seed (0 = from the clock)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	}
	urlFlag := false
	fs.Visit(func(f *flag.Flag) { urlFlag = urlFlag || f.Name == "postgres-url" })
	if c.Store == storeSQLite && !urlFlag {
		c.PostgresURL = "" // SOAK_POSTGRES_URL is for PostgreSQL runs only
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.Store != storeSQLite && c.Store != storePostgres:
		return fmt.Errorf("-store %q: want %s or %s", c.Store, storeSQLite, storePostgres)
	case c.Instances < 1:
		return fmt.Errorf("-instances %d: want at least 1", c.Instances)
	case c.Instances > 1 && c.Store != storePostgres:
		return fmt.Errorf("-instances %d: several instances need a shared store (-store %s); a SQLite file has one server", c.Instances, storePostgres)
	case c.Instances > c.Clients:
		return fmt.Errorf("-instances %d: more instances than -clients (%d)", c.Instances, c.Clients)
	case c.PGParams != "" && c.Store != storePostgres:
		return fmt.Errorf("-pg-params is for -store %s", storePostgres)
	case c.PostgresURL != "" && c.Store != storePostgres:
		return fmt.Errorf("-postgres-url (or SOAK_POSTGRES_URL) is given, but -store is %s", c.Store)
	case c.Clients < 1:
		return fmt.Errorf("-clients %d: want at least 1", c.Clients)
	case c.Hammer < 0 || c.Hammer > c.Clients:
		return fmt.Errorf("-hammer %d: want 0 to -clients (%d)", c.Hammer, c.Clients)
	case c.Duration <= 0:
		return fmt.Errorf("-duration %s: want a positive duration", c.Duration)
	case c.ClientsPerUser < 1:
		return fmt.Errorf("-clients-per-user %d: want at least 1", c.ClientsPerUser)
	case c.SharedRecords < 1:
		return fmt.Errorf("-shared %d: want at least 1", c.SharedRecords)
	case c.ThinkMin < 0 || c.ThinkMax < c.ThinkMin:
		return fmt.Errorf("-think-min %s / -think-max %s: want 0 <= min <= max", c.ThinkMin, c.ThinkMax)
	case c.EventsPercent < 0 || c.EventsPercent > 100:
		return fmt.Errorf("-events %d: want a percentage", c.EventsPercent)
	case c.PullLimit < 1:
		return fmt.Errorf("-pull-limit %d: want at least 1", c.PullLimit)
	}
	for name, p := range map[string]float64{"-retry-rate": c.RetryRate, "-race-rate": c.RaceRate, "-reject-rate": c.RejectRate} {
		if p < 0 || p > 1 {
			return fmt.Errorf("%s %v: want a probability from 0 to 1", name, p)
		}
	}
	return nil
}

// Users is the number of simulated users (one bearer token each).
func (c Config) Users() int { return (c.Clients + c.ClientsPerUser - 1) / c.ClientsPerUser }

func envInt(getenv func(string) string, name string, def int) (int, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a whole number", name, s)
	}
	return n, nil
}

// envDuration accepts a Go duration ("90s", "2m") or a plain number of
// seconds.
func envDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration such as 60s or a number of seconds", name, s)
	}
	return d, nil
}
