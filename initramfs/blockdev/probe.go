// Package blockdev identifies block devices without libblkid (filesystem
// UUID and label from the superblock, GPT partition UUIDs) and waits for
// the one a root= specification names.
package blockdev

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
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

// probeSize is how much of a device Probe reads: enough for the furthest
// superblock it knows, btrfs's 4 KiB at 64 KiB.
const probeSize = 64<<10 + 4096

// A superblock reader recognizes one filesystem in the head of a device
// (the first probeSize bytes, or fewer on a small device). It must check
// that its whole superblock is there before it reads any of it: what is on
// a disk is not to be trusted, and PID 1 must not fall over on it.
type superblockReader func(head []byte) (fstype, uuid, label string, ok bool)

var superblockReaders = []superblockReader{readExt, readBtrfs, readXFS, readFAT}

// Probe reads the filesystem type, UUID and label from a device's
// superblock. Unknown, garbage or truncated content is not an error:
// FSType stays "".
func Probe(r io.ReaderAt) (fstype, uuid, label string) {
	head := make([]byte, probeSize)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	for _, read := range superblockReaders {
		if fstype, uuid, label, ok := read(head); ok {
			return fstype, uuid, label
		}
	}
	return "", "", ""
}

// region returns head[off:off+size], or nil when the device is shorter.
func region(head []byte, off, size int) []byte {
	if len(head) < off+size {
		return nil
	}
	return head[off : off+size]
}

// readExt reads an ext2/3/4 superblock: 1024 bytes at 1024, magic at 56.
func readExt(head []byte) (string, string, string, bool) {
	sb := region(head, 1024, 1024)
	if sb == nil || binary.LittleEndian.Uint16(sb[56:]) != 0xef53 {
		return "", "", "", false
	}
	return extType(sb), guid(sb[104:120]), cstr(sb[120:136]), true
}

// readBtrfs reads a btrfs superblock: 4096 bytes at 64 KiB, magic at 64.
func readBtrfs(head []byte) (string, string, string, bool) {
	sb := region(head, 64<<10, 4096)
	if sb == nil || string(sb[64:72]) != "_BHRfS_M" {
		return "", "", "", false
	}
	return "btrfs", guid(sb[32:48]), cstr(sb[299 : 299+256]), true
}

// readXFS reads an XFS superblock: 512 bytes at 0, magic at 0.
func readXFS(head []byte) (string, string, string, bool) {
	sb := region(head, 0, 512)
	if sb == nil || string(sb[:4]) != "XFSB" {
		return "", "", "", false
	}
	return "xfs", guid(sb[32:48]), cstr(sb[108:120]), true
}

// readFAT reads a FAT boot sector: 512 bytes at 0 ending in 55 aa, with the
// FAT32 or the FAT12/16 extended boot record.
func readFAT(head []byte) (string, string, string, bool) {
	bs := region(head, 0, 512)
	switch {
	case bs == nil || bs[510] != 0x55 || bs[511] != 0xaa:
	case string(bs[82:87]) == "FAT32":
		return "vfat", fatSerial(bs[67:71]), fatLabel(bs[71:82]), true
	case string(bs[54:57]) == "FAT":
		return "vfat", fatSerial(bs[39:43]), fatLabel(bs[43:54]), true
	}
	return "", "", "", false
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

// Limits on a GPT, checked before anything is allocated from what the
// header says. UEFI: the entry size is 128 * 2^n; we also bound it at 4096
// and the whole entry array at 1 MiB (128 entries of 128 bytes take 16 KiB;
// Linux itself creates at most 255 partitions).
const (
	gptHeaderMin    = 92
	gptEntryMin     = 128
	gptEntryMax     = 4096
	gptTableMax     = 1 << 20
	gptBlockSizeMin = 512
	gptBlockSizeMax = 64 << 10
)

// ReadGPT reads the primary partition table of a disk of diskSize bytes
// with the given logical block size. The header's fields are validated
// (sizes, LBAs inside the disk, both CRCs) before they are used, so a
// crafted table gives an error, never a huge allocation or a panic.
func ReadGPT(r io.ReaderAt, diskSize, blockSize int64) ([]Partition, error) {
	if blockSize < gptBlockSizeMin || blockSize > gptBlockSizeMax || blockSize&(blockSize-1) != 0 {
		return nil, fmt.Errorf("gpt: logical block size %d is not a power of two in %d..%d", blockSize, gptBlockSizeMin, gptBlockSizeMax)
	}
	blocks := uint64(diskSize / blockSize)
	if diskSize < 0 || blocks < 3 {
		return nil, fmt.Errorf("gpt: a disk of %d bytes has no room for a GPT", diskSize)
	}
	lastLBA := blocks - 1
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("gpt: protective MBR: %w", err)
	}
	if !protectiveMBR(mbr) {
		return nil, errors.New("no GPT: the MBR has no protective (0xEE) partition, so the kernel does not read a GPT here either")
	}
	hdr := make([]byte, blockSize)
	if _, err := r.ReadAt(hdr, blockSize); err != nil {
		return nil, fmt.Errorf("gpt header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, errors.New("no GPT header")
	}
	le := binary.LittleEndian
	size := le.Uint32(hdr[12:])
	if size < gptHeaderMin || int64(size) > blockSize {
		return nil, fmt.Errorf("gpt: header size %d outside %d..%d", size, gptHeaderMin, blockSize)
	}
	want := le.Uint32(hdr[16:])
	le.PutUint32(hdr[16:], 0)
	if crc32.ChecksumIEEE(hdr[:size]) != want {
		return nil, errors.New("gpt header checksum mismatch")
	}
	myLBA, firstUsable, lastUsable := le.Uint64(hdr[24:]), le.Uint64(hdr[40:]), le.Uint64(hdr[48:])
	entriesLBA, count, entrySize := le.Uint64(hdr[72:]), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	switch {
	case myLBA != 1:
		return nil, fmt.Errorf("gpt: primary header says it is at LBA %d, not 1", myLBA)
	case firstUsable > lastUsable || lastUsable > lastLBA:
		return nil, fmt.Errorf("gpt: usable LBAs %d..%d outside the disk's 0..%d", firstUsable, lastUsable, lastLBA)
	case entrySize < gptEntryMin || entrySize > gptEntryMax || entrySize&(entrySize-1) != 0:
		return nil, fmt.Errorf("gpt: partition entry size %d is not a power of two in %d..%d", entrySize, gptEntryMin, gptEntryMax)
	case uint64(count)*uint64(entrySize) > gptTableMax:
		return nil, fmt.Errorf("gpt: %d entries of %d bytes exceed %d bytes", count, entrySize, gptTableMax)
	}
	tableBlocks := (uint64(count)*uint64(entrySize) + uint64(blockSize) - 1) / uint64(blockSize)
	if entriesLBA < 2 || entriesLBA > lastLBA || tableBlocks > lastLBA+1-entriesLBA {
		return nil, fmt.Errorf("gpt: partition entries at LBA %d (%d blocks) outside the disk's 2..%d", entriesLBA, tableBlocks, lastLBA)
	}
	table := make([]byte, count*entrySize)
	if _, err := r.ReadAt(table, int64(entriesLBA)*blockSize); err != nil {
		return nil, fmt.Errorf("gpt entries: %w", err)
	}
	if crc32.ChecksumIEEE(table) != le.Uint32(hdr[88:]) {
		return nil, errors.New("gpt entries checksum mismatch")
	}
	var parts []Partition
	for i := uint32(0); i < count; i++ {
		e := table[i*entrySize : (i+1)*entrySize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		parts = append(parts, Partition{Number: int(i) + 1, UUID: gptGUID(e[16:32]), Label: gptName(e[56:128])})
	}
	return parts, nil
}

// protectiveMBR reports whether LBA 0 announces a GPT the way the kernel
// requires: the 55 aa signature and a partition of type 0xEE in one of the
// four slots (protective or hybrid MBR).
func protectiveMBR(mbr []byte) bool {
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return false
	}
	for slot := 0; slot < 4; slot++ {
		if mbr[446+16*slot+4] == 0xee {
			return true
		}
	}
	return false
}

// gptName decodes a partition name: UTF-16LE, NUL-terminated or 36 units.
func gptName(b []byte) string {
	var units []uint16
	for j := 0; j+1 < len(b); j += 2 {
		c := binary.LittleEndian.Uint16(b[j:])
		if c == 0 {
			break
		}
		units = append(units, c)
	}
	return string(utf16.Decode(units))
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

// ErrAmbiguous: more than one block device matches a root= specification.
// Taking the first would let any disk that copies the root's label or UUID
// (a USB stick, a second drive) race the real root.
var ErrAmbiguous = errors.New("more than one block device matches")

// Match finds the one device among devs that spec names: found is false
// when none does, and the error names every device when more than one does.
func Match(devs []Device, spec string) (dev Device, found bool, err error) {
	var matches []string
	for _, d := range devs {
		if d.Matches(spec) {
			dev = d
			matches = append(matches, d.String())
		}
	}
	if len(matches) > 1 {
		return Device{}, false, fmt.Errorf("%w root=%s: %s", ErrAmbiguous, spec, strings.Join(matches, "; "))
	}
	return dev, len(matches) == 1, nil
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
