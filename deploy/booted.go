package deploy

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"cfsboot/verity"
)

// RootDigest finds the composefs digest of the mount at / in a
// /proc/self/mountinfo: its source is composefs:<hex> (as bootc reads it).
// The last mount at / wins, as it is the visible one. nil when the root is
// not a composefs mount.
func RootDigest(mountinfo io.Reader) (*verity.Digest, error) {
	var found *verity.Digest
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+3 || fields[4] != "/" {
			continue
		}
		found = nil
		hex, ok := strings.CutPrefix(fields[sep+2], "composefs:")
		if !ok {
			continue
		}
		d, err := verity.ParseDigest(hex)
		if err != nil {
			return nil, fmt.Errorf("mountinfo: root source %s: %w", fields[sep+2], err)
		}
		found = &d
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return found, nil
}
