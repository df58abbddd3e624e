package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/opfsync/opfsync/pkg/syncserver"
)

// devUser is the user id of the -token development token.
const devUser = "dev"

// config is the command line.
type config struct {
	addr       string
	db         string
	static     string
	token      string
	tokensFile string
}

// parseFlags reads the command line. Usage and errors go to out.
func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("opfsync-server", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.db, "db", "./data/opfsync.db", "SQLite database file (its directory is created)")
	fs.StringVar(&c.static, "static", "", "folder to serve at / (the web client, wasm, demo); none if empty")
	fs.StringVar(&c.token, "token", "", `a development bearer token for the user "`+devUser+`"`)
	fs.StringVar(&c.tokensFile, "tokens", "", `JSON file mapping bearer tokens to user ids: {"token": "user", ...}`)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	}
	return c, nil
}

// loadTokens builds the token set from -token and -tokens. It refuses to
// run without any token, and a token mapped to two different users.
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
