//go:build !linux

package pgtest

import (
	"os/user"
	"syscall"
)

// processAttrs: outside Linux the cluster runs as the current user (which
// must not be root) and is stopped only by Stop.
func processAttrs(*user.User) *syscall.SysProcAttr { return nil }
