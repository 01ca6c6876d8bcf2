package deploy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"

	"cfsboot/verity"
)

// LoaderEntrySelectedVar is the efivarfs file systemd-boot leaves the
// booted entry's id in (Boot Loader Interface, vendor GUID 4a67b082-...).
const LoaderEntrySelectedVar = "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

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

// ParseEFIString decodes an efivarfs file holding a string variable: four
// bytes of attributes, then UTF-16LE text, usually NUL-terminated.
func ParseEFIString(data []byte) (string, error) {
	if len(data) < 4 || (len(data)-4)%2 != 0 {
		return "", fmt.Errorf("efi variable of %d bytes: want 4 bytes of attributes and UTF-16LE text", len(data))
	}
	u := make([]uint16, 0, (len(data)-4)/2)
	for i := 4; i+1 < len(data); i += 2 {
		c := binary.LittleEndian.Uint16(data[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}
