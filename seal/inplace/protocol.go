// Package inplace seals a store that was copied without fs-verity (by
// mkfs.ext4 -d on a host whose kernel lacks it): it enables fs-verity on
// every object and image where it lies and checks the kernel's digest
// against the file's name. It runs inside the sealing VM (cmd/cfsboot-seal)
// and speaks to the host over the serial console in the lines below.
package inplace

import (
	"fmt"
	"strings"
)

// Console lines of the sealing VM, read by the host (package seal).
const (
	prefix       = "cfsboot-seal: "
	progressWord = "progress"
	sealedWord   = "sealed"
	failedWord   = "failed:"
)

// ProgressLine, SealedLine and FailedLine format the console protocol.
func ProgressLine(done, total int) string {
	return fmt.Sprintf("%s%s %d/%d", prefix, progressWord, done, total)
}
func SealedLine(n int) string     { return fmt.Sprintf("%s%s %d files", prefix, sealedWord, n) }
func FailedLine(err error) string { return prefix + failedWord + " " + err.Error() }

// Event is one protocol line the host saw.
type Event struct {
	Done, Total int    // progress
	Sealed      int    // files sealed, when finished; -1 otherwise
	Failure     string // the VM's error, when it failed
}

// ParseLine reads a console line; ok is false for other console output
// (the kernel's messages share the console).
func ParseLine(line string) (ev Event, ok bool) {
	i := strings.Index(line, prefix)
	if i < 0 {
		return Event{}, false
	}
	rest := strings.TrimRight(line[i+len(prefix):], "\r")
	ev.Sealed = -1
	switch {
	case strings.HasPrefix(rest, failedWord):
		ev.Failure = strings.TrimSpace(strings.TrimPrefix(rest, failedWord))
		if ev.Failure == "" {
			ev.Failure = "no reason given"
		}
		return ev, true
	case strings.HasPrefix(rest, progressWord+" "):
		if n, err := fmt.Sscanf(rest, progressWord+" %d/%d", &ev.Done, &ev.Total); n == 2 && err == nil && ev.Done >= 0 && ev.Done <= ev.Total {
			return ev, true
		}
	case strings.HasPrefix(rest, sealedWord+" "):
		if n, err := fmt.Sscanf(rest, sealedWord+" %d files", &ev.Sealed); n == 1 && err == nil && ev.Sealed >= 0 {
			return ev, true
		}
	}
	return Event{}, false
}
