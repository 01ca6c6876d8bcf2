// Package blockdev identifies block devices without libblkid (filesystem
// UUID and label from the superblock, GPT partition UUIDs) and waits for
// the one a root= specification names.
package blockdev

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// Device is a probed block device.
type Device struct {
	Path      string // /dev/...
	FSType    string // ext4, btrfs, xfs, vfat; "" when unknown
	UUID      string // filesystem UUID, as blkid prints it
	Label     string
	PartUUID  string // GPT partition UUID, when a GPT partition
	PartLabel string
}

func (d Device) String() string {
	s := d.Path
	for _, kv := range [][2]string{{"TYPE", d.FSType}, {"UUID", d.UUID}, {"LABEL", d.Label}, {"PARTUUID", d.PartUUID}} {
		if kv[1] != "" {
			s += fmt.Sprintf(" %s=%q", kv[0], kv[1])
		}
	}
	return s
}

// Probe reads the filesystem type, UUID and label from a device's
// superblock. Unknown or garbage content is not an error: FSType stays "".
func Probe(r io.ReaderAt) (fstype, uuid, label string) {
	buf := make([]byte, 64<<10+4096)
	n, _ := r.ReadAt(buf, 0)
	buf = buf[:n]
	at := func(off, size int) []byte {
		if off+size > len(buf) {
			return nil
		}
		return buf[off : off+size]
	}
	le := binary.LittleEndian
	if m := at(1024+56, 2); m != nil && le.Uint16(m) == 0xef53 {
		sb := at(1024, 1024)
		return extType(sb), guid(sb[104:120]), cstr(sb[120:136])
	}
	if m := at(64<<10+64, 8); m != nil && string(m) == "_BHRfS_M" {
		sb := at(64<<10, 4096)
		return "btrfs", guid(sb[32:48]), cstr(sb[299 : 299+256])
	}
	if m := at(0, 4); m != nil && string(m) == "XFSB" {
		sb := at(0, 512)
		return "xfs", guid(sb[32:48]), cstr(sb[108:120])
	}
	if bs := at(0, 512); bs != nil && bs[510] == 0x55 && bs[511] == 0xaa {
		if string(bs[82:87]) == "FAT32" {
			return "vfat", fatSerial(bs[67:71]), fatLabel(bs[71:82])
		}
		if string(bs[54:57]) == "FAT" {
			return "vfat", fatSerial(bs[39:43]), fatLabel(bs[43:54])
		}
	}
	return "", "", ""
}

// extType tells ext2, ext3 and ext4 apart by their feature flags.
func extType(sb []byte) string {
	le := binary.LittleEndian
	compat, incompat := le.Uint32(sb[92:]), le.Uint32(sb[96:])
	const hasJournal, extents, flexBG, bit64 = 0x4, 0x40, 0x200, 0x80
	switch {
	case incompat&(extents|flexBG|bit64) != 0:
		return "ext4"
	case compat&hasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// guid formats 16 bytes as a big-endian UUID string (filesystem UUIDs).
func guid(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// gptGUID formats a GPT GUID, whose first three fields are little-endian.
func gptGUID(b []byte) string {
	s := make([]byte, 16)
	copy(s, b)
	for _, r := range [][2]int{{0, 4}, {4, 6}, {6, 8}} {
		for i, j := r[0], r[1]-1; i < j; i, j = i+1, j-1 {
			s[i], s[j] = s[j], s[i]
		}
	}
	return guid(s)
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func fatSerial(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%04x-%04x", binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint16(b[0:])))
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " ")
	if l == "NO NAME" {
		return ""
	}
	return l
}

// Partition is one GPT partition entry.
type Partition struct {
	Number int // 1-based, as the kernel numbers partitions
	UUID   string
	Label  string
}

// ReadGPT reads the partition table of a disk with the given logical block
// size, checking the header's CRC.
func ReadGPT(r io.ReaderAt, blockSize int64) ([]Partition, error) {
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, blockSize); err != nil {
		return nil, fmt.Errorf("gpt header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("no GPT header")
	}
	le := binary.LittleEndian
	size := le.Uint32(hdr[12:])
	if size < 92 || size > uint32(blockSize) {
		return nil, fmt.Errorf("gpt header size %d", size)
	}
	full := make([]byte, size)
	if _, err := r.ReadAt(full, blockSize); err != nil {
		return nil, fmt.Errorf("gpt header: %w", err)
	}
	want := le.Uint32(full[16:])
	le.PutUint32(full[16:], 0)
	if crc32.ChecksumIEEE(full) != want {
		return nil, fmt.Errorf("gpt header checksum mismatch")
	}
	entriesLBA, count, entrySize := int64(le.Uint64(hdr[72:])), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	if entrySize < 128 || count > 1024 {
		return nil, fmt.Errorf("gpt: %d entries of %d bytes", count, entrySize)
	}
	table := make([]byte, int64(count)*int64(entrySize))
	if _, err := r.ReadAt(table, entriesLBA*blockSize); err != nil {
		return nil, fmt.Errorf("gpt entries: %w", err)
	}
	if crc32.ChecksumIEEE(table) != le.Uint32(hdr[88:]) {
		return nil, fmt.Errorf("gpt entries checksum mismatch")
	}
	var parts []Partition
	for i := uint32(0); i < count; i++ {
		e := table[i*entrySize : (i+1)*entrySize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		var name []rune
		for j := 56; j+1 < 128; j += 2 {
			c := le.Uint16(e[j:])
			if c == 0 {
				break
			}
			name = append(name, rune(c))
		}
		parts = append(parts, Partition{Number: int(i) + 1, UUID: gptGUID(e[16:32]), Label: string(name)})
	}
	return parts, nil
}

// Matches reports whether d is what a root= specification names.
func (d Device) Matches(spec string) bool {
	key, value, ok := strings.Cut(spec, "=")
	if !ok {
		return spec == d.Path
	}
	switch key {
	case "UUID":
		return d.UUID != "" && strings.EqualFold(value, d.UUID)
	case "PARTUUID":
		return d.PartUUID != "" && strings.EqualFold(value, d.PartUUID)
	case "LABEL":
		return d.Label != "" && value == d.Label
	case "PARTLABEL":
		return d.PartLabel != "" && value == d.PartLabel
	}
	return false
}

// ValidSpec checks a root= value.
func ValidSpec(spec string) error {
	key, value, ok := strings.Cut(spec, "=")
	switch {
	case !ok && strings.HasPrefix(spec, "/dev/"):
		return nil
	case ok && value != "" && (key == "UUID" || key == "PARTUUID" || key == "LABEL" || key == "PARTLABEL"):
		return nil
	}
	return fmt.Errorf("root=%s: want UUID=, PARTUUID=, LABEL=, PARTLABEL= or a /dev/ path", spec)
}
