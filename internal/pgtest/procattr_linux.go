package pgtest

import (
	"os/user"
	"strconv"
	"syscall"
)

// processAttrs runs a PostgreSQL program as u (nil: the current user), and
// makes it die with the test binary: a binary that dies without Stop
// (killed, timed out) takes its cluster with it (SIGQUIT is PostgreSQL's
// immediate shutdown).
func processAttrs(u *user.User) *syscall.SysProcAttr {
	attrs := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if u != nil {
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		attrs.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return attrs
}
