//go:build !race

package e2e

// raceDetector says the tests run with -race (about 10x slower on the
// translated SQLite): heavy tests shrink their workloads.
const raceDetector = false
