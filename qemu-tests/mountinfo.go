package qemutests

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo (proc(5)).
type MountInfo struct {
	MountPoint   string
	MountOptions []string // per-mount: ro/rw, nosuid, relatime, ...
	FSType       string
	Source       string
	SuperOptions []string // the superblock's: ro/rw and the filesystem's own options
}

// ParseMountInfo splits a mountinfo line into its fields: six fixed ones,
// optional fields up to a lone "-", then type, source and super options.
func ParseMountInfo(line string) (MountInfo, error) {
	fields := strings.Fields(line)
	sep := slices.Index(fields, "-")
	if sep < 6 || len(fields) != sep+4 {
		return MountInfo{}, fmt.Errorf("mountinfo line %q: want 6 fields, optional fields, \"-\", type, source and options", line)
	}
	return MountInfo{
		MountPoint:   unescapeMountinfo(fields[4]),
		MountOptions: strings.Split(fields[5], ","),
		FSType:       fields[sep+1],
		Source:       unescapeMountinfo(fields[sep+2]),
		SuperOptions: strings.Split(fields[sep+3], ","),
	}, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
