package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/opfsync/opfsync/pkg/syncserver"
)

// devUser is the user id of the -token development token.
const devUser = "dev"

// config is the command line of the server.
type config struct {
	addr           string
	db             string
	postgres       string // a PostgreSQL connection URL: use it instead of db
	static         string
	token          string
	tokensFile     string
	signingKeyFile string
	// verdictRetention is how long a mutation's verdict is kept (0:
	// forever); see syncserver.PruneVerdictsEvery.
	verdictRetention time.Duration

	// timeouts are the HTTP server's timeouts; zero ones are the defaults
	// (defaultTimeouts). Not a flag: tests shorten them.
	timeouts timeouts
}

// timeouts are the HTTP server's time limits (see http.Server).
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

// withDefaults fills in the zero limits from defaultTimeouts.
func (t timeouts) withDefaults() timeouts {
	orDefault := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	return timeouts{
		readHeader: orDefault(t.readHeader, defaultTimeouts.readHeader),
		read:       orDefault(t.read, defaultTimeouts.read),
		write:      orDefault(t.write, defaultTimeouts.write),
		idle:       orDefault(t.idle, defaultTimeouts.idle),
	}
}

// parseFlags reads the command line of the server. Usage and errors go to
// out.
func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("opfsync-server", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.db, "db", "./data/opfsync.db", "SQLite database file (its directory is created)")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL connection URL (postgres://user:pass@host:5432/db); used instead of -db, so that\n"+
		"several server instances can share one database. Default: $"+postgresEnv)
	fs.StringVar(&c.static, "static", "", "folder to serve at / (the web client, wasm, demo); none if empty")
	fs.StringVar(&c.token, "token", "", `a development bearer token for the user "`+devUser+`"`)
	fs.StringVar(&c.tokensFile, "tokens", "", `JSON file mapping bearer tokens to user ids: {"token": "user", ...}`)
	fs.StringVar(&c.signingKeyFile, "signing-key-file", "", "file holding the key (at least 32 bytes, e.g. openssl rand -hex 32) that signed, expiring\n"+
		"tokens are checked with (make them with: opfsync-server issue-token)")
	fs.DurationVar(&c.verdictRetention, "verdict-retention", 0, "forget the verdict of a mutation this long after it was given (e.g. 2160h for 90 days; 0 keeps\n"+
		"them all). A retry arriving later is decided again, which is harmless; keep it longer than a device may stay offline")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: opfsync-server [flags]\n       opfsync-server issue-token -signing-key-file F -user U [-ttl 24h]\n"+
			"       opfsync-server copy-to-postgres -db F -postgres URL\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	}
	dbGiven := false
	fs.Visit(func(f *flag.Flag) { dbGiven = dbGiven || f.Name == "db" })
	if c.postgres == "" {
		c.postgres = os.Getenv(postgresEnv)
	}
	if c.verdictRetention < 0 || c.verdictRetention > 0 && c.verdictRetention < time.Second {
		return c, fmt.Errorf("-verdict-retention %v: give 0 (keep every verdict) or at least 1s", c.verdictRetention)
	}
	if c.postgres != "" && dbGiven {
		return c, errors.New("-db and -postgres (or " + postgresEnv + ") both given: the server uses one store; pick one")
	}
	return c, nil
}

// postgresEnv is the environment variable that stands in for -postgres
// (so the URL and its password need not be on the command line).
const postgresEnv = "OPFSYNC_POSTGRES_URL"

// issueConfig is the command line of issue-token.
type issueConfig struct {
	signingKeyFile string
	user           string
	ttl            time.Duration
}

// parseIssueFlags reads the command line of issue-token (the arguments
// after it). Usage and errors go to out.
func parseIssueFlags(args []string, out io.Writer) (issueConfig, error) {
	var c issueConfig
	fs := flag.NewFlagSet("opfsync-server issue-token", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.signingKeyFile, "signing-key-file", "", "file holding the signing key the server is started with (required)")
	fs.StringVar(&c.user, "user", "", "user id the token is for (required)")
	fs.DurationVar(&c.ttl, "ttl", 24*time.Hour, "how long the token is valid (at least 1s)")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: opfsync-server issue-token -signing-key-file F -user U [-ttl 24h]\n\n"+
			"Prints a signed bearer token for user U, valid for -ttl, that a server started with\n"+
			"the same -signing-key-file accepts.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	case c.signingKeyFile == "":
		return c, errors.New("-signing-key-file is required")
	case c.user == "":
		return c, errors.New("-user is required")
	case c.ttl < time.Second:
		return c, fmt.Errorf("-ttl %v: a token must be valid for at least 1s", c.ttl)
	}
	return c, nil
}

// loadSigningKey reads the signing key: the file's bytes without leading
// and trailing white space (so a key written by `openssl rand -hex 32 > F`,
// newline included, is the 64 hex characters). It refuses a key shorter
// than syncserver.MinSigningKeyBytes.
func loadSigningKey(path string) (*syncserver.SignedTokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-signing-key-file: %w", err)
	}
	key := bytes.TrimSpace(data)
	if len(key) < syncserver.MinSigningKeyBytes {
		return nil, fmt.Errorf("-signing-key-file %s: the key is %d bytes, it must be at least %d; make one with: openssl rand -hex 32 > %s",
			path, len(key), syncserver.MinSigningKeyBytes, path)
	}
	return syncserver.NewSignedTokens(key)
}

// loadAuth builds the authenticator from -token, -tokens and
// -signing-key-file (any of them, together), and describes it for the log.
// It refuses to run without any way to authenticate.
func loadAuth(c config) (syncserver.Authenticator, string, error) {
	var auths []syncserver.Authenticator
	var what []string
	if c.token != "" || c.tokensFile != "" {
		tokens, err := loadTokens(c)
		if err != nil {
			return nil, "", err
		}
		auths = append(auths, tokens)
		what = append(what, fmt.Sprintf("%d static tokens", len(tokens)))
	}
	if c.signingKeyFile != "" {
		signed, err := loadSigningKey(c.signingKeyFile)
		if err != nil {
			return nil, "", err
		}
		auths = append(auths, signed)
		what = append(what, "signed tokens")
	}
	switch len(auths) {
	case 0:
		return nil, "", errors.New("no tokens: start with -token T (a development token for user \"dev\"), -tokens FILE (JSON {\"token\": \"user id\"}) and/or -signing-key-file FILE (signed, expiring tokens)")
	case 1:
		return auths[0], what[0], nil
	}
	return syncserver.AnyOf(auths...), what[0] + " and " + what[1], nil
}

// loadTokens builds the static token set from -token and -tokens. It
// refuses an empty set and a token mapped to two different users.
func loadTokens(c config) (syncserver.Tokens, error) {
	tokens := syncserver.Tokens{}
	if c.tokensFile != "" {
		data, err := os.ReadFile(c.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("-tokens: %w", err)
		}
		if err := json.Unmarshal(data, &tokens); err != nil {
			return nil, fmt.Errorf(`-tokens %s: want a JSON object {"token": "user id", ...}: %w`, c.tokensFile, err)
		}
		if len(tokens) == 0 {
			return nil, fmt.Errorf("-tokens %s: the file maps no tokens", c.tokensFile)
		}
	}
	if c.token != "" {
		if user, ok := tokens[c.token]; ok && user != devUser {
			return nil, fmt.Errorf("-token: that token is also in -tokens, for user %q", user)
		}
		tokens[c.token] = devUser
	}
	if len(tokens) == 0 {
		return nil, errors.New("no tokens: start with -token T (a development token for user \"dev\") and/or -tokens FILE (JSON {\"token\": \"user id\"})")
	}
	if err := tokens.Validate(); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return tokens, nil
}
