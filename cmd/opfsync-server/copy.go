package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/opfsync/opfsync/pkg/syncserver"
)

// copyToPostgres is the copy-to-postgres command: it copies a SQLite
// database (-db) into an empty PostgreSQL one (-postgres or
// OPFSYNC_POSTGRES_URL), for moving a server from one to the other.
func copyToPostgres(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("opfsync-server copy-to-postgres", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "the SQLite database file to copy (required; stop the server using it first)")
	pg := fs.String("postgres", os.Getenv(postgresEnv), "the PostgreSQL connection URL of an empty database (default: $"+postgresEnv+")")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: opfsync-server copy-to-postgres -db F -postgres URL\n\n"+
			"Copies every record (with its change position, so clients' cursors stay valid) and every\n"+
			"mutation verdict from the SQLite file into an empty PostgreSQL database, in one transaction.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "opfsync-server copy-to-postgres: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *db == "" || *pg == "":
		fmt.Fprintln(stderr, "opfsync-server copy-to-postgres: -db and -postgres (or "+postgresEnv+") are required")
		return 2
	}
	if _, err := os.Stat(*db); err != nil {
		fmt.Fprintf(stderr, "opfsync-server copy-to-postgres: -db: %v\n", err)
		return 1
	}
	src, err := syncserver.OpenSQLite(ctx, *db)
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server copy-to-postgres: %v\n", err)
		return 1
	}
	defer src.Close()
	dst, err := syncserver.OpenPostgres(ctx, *pg)
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server copy-to-postgres: %v\n", err)
		return 1
	}
	defer dst.Close()
	st, err := syncserver.CopySQLiteToPostgres(ctx, src, dst)
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server copy-to-postgres: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "copied %s to postgres %s: %d records, %d applied and %d rejected mutation verdicts\n",
		*db, dst.Database(), st.Records, st.Applied, st.Rejected)
	return 0
}
