//go:build js && wasm

package opfs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// SQLite on the VFS: integrity under many random transactions, the
// journal modes, crash recovery, and a second connection.

func TestRandomTransactionsKeepIntegrity(t *testing.T) {
	db, _ := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	m := model{}
	rng := rand.New(rand.NewPCG(3, 4))
	runRandomTransactions(t, conn, m, rng, 300)
	checkModel(t, conn, m)
	if mode := queryText(t, conn, "PRAGMA journal_mode"); mode != "wal" {
		t.Errorf("journal_mode %s", mode)
	}
	t.Logf("%d rows, main %d bytes, wal %d bytes", len(m), db.files[fileMain].size, db.files[fileWAL].size)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing the connection checkpoints and deletes (empties) the WAL.
	if s := db.files[fileWAL].size; s != 0 {
		t.Errorf("WAL has %d bytes after a clean close", s)
	}
	db = reopen(t, db)
	conn = openConn(t, db, enginePragmas...)
	defer conn.Close()
	checkModel(t, conn, m)
	// And it keeps working after the re-open.
	runRandomTransactions(t, conn, m, rng, 50)
	checkModel(t, conn, m)
}

func TestJournalModes(t *testing.T) {
	for _, tc := range []struct {
		locking, journal string
	}{
		{"EXCLUSIVE", "wal"},
		{"NORMAL", "delete"},
		{"NORMAL", "truncate"},
		{"NORMAL", "persist"},
		{"EXCLUSIVE", "delete"},
	} {
		t.Run(tc.locking+"-"+tc.journal, func(t *testing.T) {
			db, _ := openTestDB(t)
			conn := openConn(t, db, "PRAGMA locking_mode="+tc.locking, "PRAGMA temp_store=MEMORY",
				"PRAGMA journal_mode="+tc.journal, "PRAGMA synchronous=FULL")
			defer conn.Close()
			exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
			m := model{}
			runRandomTransactions(t, conn, m, rand.New(rand.NewPCG(5, 6)), 60)
			checkModel(t, conn, m)
		})
	}
	// Without exclusive locking there is no WAL (no shared memory): SQLite
	// answers the mode it kept, which is why the engine checks the answer.
	db, _ := openTestDB(t)
	conn := openConn(t, db)
	if mode := queryText(t, conn, "PRAGMA journal_mode=WAL"); mode != "delete" {
		t.Errorf("journal_mode=WAL with normal locking answered %q, want delete", mode)
	}
	conn.Close()
	// And a database in WAL format opens only with exclusive locking.
	conn = openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x)")
	conn.Close()
	conn, err := sqlite3.Open(db.URI())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec("SELECT * FROM t"); !errors.Is(err, sqlite3.CANTOPEN) {
		t.Errorf("a WAL database without locking_mode=EXCLUSIVE: %v, want CANTOPEN", err)
	}
}

// crash makes the files stop working under an open connection, as if the
// worker died: the handles are flushed and closed (the OS keeps what was
// written), and whatever SQLite tries afterwards fails.
func crash(t testing.TB, db *DB, conn *sqlite3.Conn) {
	t.Helper()
	db.Close()
	conn.Close() // its rollback and checkpoint fail: the handles are gone
}

func TestCrashRecovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pragmas []string
	}{
		{"wal", enginePragmas},
		{"delete", []string{"PRAGMA temp_store=MEMORY", "PRAGMA journal_mode=delete", "PRAGMA synchronous=FULL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			conn := openConn(t, db, tc.pragmas...)
			exec(t, conn, "PRAGMA cache_size=10") // spill the big transaction to disk
			exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
			m := model{}
			rng := rand.New(rand.NewPCG(7, 8))
			runRandomTransactions(t, conn, m, rng, 40)
			// A transaction that never commits, big enough that SQLite
			// writes it out (WAL frames without a commit mark; or database
			// pages with the originals in a hot journal).
			exec(t, conn, "BEGIN IMMEDIATE")
			for i := range 200 {
				exec(t, conn, fmt.Sprintf("INSERT INTO kv VALUES (%d, randomblob(3000))", 1_000_000+i))
			}
			exec(t, conn, "UPDATE kv SET v = zeroblob(100) WHERE k < 1000000")
			if tc.name == "wal" && db.files[fileWAL].size < 600_000 {
				t.Fatalf("the uncommitted transaction did not reach the WAL (%d bytes)", db.files[fileWAL].size)
			}
			if tc.name == "delete" && db.files[fileJournal].size == 0 {
				t.Fatal("the uncommitted transaction left no journal")
			}
			crash(t, db, conn)
			db = reopen(t, db)
			if tc.name == "delete" && db.files[fileJournal].size == 0 {
				t.Fatal("the hot journal did not survive the crash")
			}
			conn = openConn(t, db, tc.pragmas...)
			defer conn.Close()
			checkModel(t, conn, m) // exactly the committed transactions
			if tc.name == "delete" && db.files[fileJournal].size != 0 {
				t.Errorf("hot journal not rolled back and emptied (%d bytes)", db.files[fileJournal].size)
			}
		})
	}
}

// Inside one worker, two connections on the same DB: locking_mode=EXCLUSIVE
// makes the second one fail with BUSY, never corrupt the first.
func TestSecondConnectionOnSameDBIsBusy(t *testing.T) {
	db, _ := openTestDB(t)
	c1 := openConn(t, db, enginePragmas...)
	defer c1.Close()
	exec(t, c1, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	c2, err := sqlite3.Open(db.URI())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Exec("PRAGMA locking_mode=EXCLUSIVE; SELECT * FROM t")
	if !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("second connection: %v, want BUSY", err)
	}
	exec(t, c1, "INSERT INTO t VALUES (2)")
	if n := queryText(t, c1, "SELECT count(*) FROM t"); n != "2" {
		t.Errorf("first connection sees %s rows", n)
	}
}

// An I/O failure other than the quota is SQLITE_IOERR, and the message
// names the JS error. Here the access handle is closed behind SQLite's back,
// so the next write throws InvalidStateError.
func TestIOErrorNamesTheJSError(t *testing.T) {
	db, _ := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	defer conn.Close()
	exec(t, conn, "CREATE TABLE t (x)")
	if _, err := db.io.number(db.io.close.Invoke(db.files[fileWAL].sah)); err != nil {
		t.Fatal(err)
	}
	err := conn.Exec("INSERT INTO t VALUES (1)")
	if !errors.Is(err, sqlite3.IOERR) {
		t.Fatalf("write on a closed handle: %v, want IOERR", err)
	}
	if !strings.Contains(err.Error(), "InvalidStateError") {
		t.Errorf("IOERR does not name the JS error: %v", err)
	}
	t.Log(err)
}

// DB.Close under a connection that is still open (a bug in the caller, or
// a shutdown in a hurry): the handles are released at once, the connection
// gets errors (never a panic), and the VFS goes away with its last file.
func TestCloseUnderAnOpenConnection(t *testing.T) {
	db, name := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	err := db.Close()
	if err == nil || !strings.Contains(err.Error(), "still had") {
		t.Errorf("Close under an open connection: %v", err)
	}
	if vfs.Find(db.VFSName()) == nil {
		t.Fatal("VFS unregistered while SQLite still uses it")
	}
	// The files are free for another DB at once.
	db2, err := Open(context.Background(), testDir, name)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer db2.Close()
	if err := conn.Exec("INSERT INTO t VALUES (2)"); err == nil {
		t.Error("write after Close succeeded")
	}
	conn.Close()
	if vfs.Find(db.VFSName()) != nil {
		t.Error("VFS still registered after its last file closed")
	}
	c2 := openConn(t, db2, enginePragmas...)
	defer c2.Close()
	if n := queryText(t, c2, "SELECT count(*) FROM t"); n != "1" {
		t.Errorf("%s rows after the failed write, want 1", n)
	}
}
