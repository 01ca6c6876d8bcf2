// Package disk writes what `cfsboot install` puts on a disk: a GUID
// partition table (protective MBR, primary and backup headers and entry
// arrays), a FAT32 EFI system partition filled with mtools, and an ext4
// root partition with the fs-verity feature. Filesystems are made by
// mkfs.vfat and mkfs.ext4 into partition-sized images or at the
// partition's offset: the host needs no vfat driver and mounts nothing.
package disk

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// SectorSize is the logical block size the table is written for.
const SectorSize = 512

// Align is where partitions start and end: 1 MiB, what fdisk and sfdisk use.
const Align = 1 << 20

const (
	entryCount = 128
	entrySize  = 128
	// entrySectors is the size of one entry array: 128 × 128 bytes.
	entrySectors = entryCount * entrySize / SectorSize
)

// GUID is a GPT GUID in its textual byte order (as printed and parsed);
// on disk the first three fields are little-endian.
type GUID [16]byte

// Partition type GUIDs (UEFI spec; Discoverable Partitions Specification).
var (
	TypeESP        = MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	TypeRootX86_64 = MustParseGUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")
)

// ParseGUID parses the 8-4-4-4-12 hex form, in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("guid %q: want 8-4-4-4-12 hex digits", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("guid %q: %w", s, err)
	}
	copy(g[:], b)
	return g, nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// RandomGUID returns a version 4 (random) GUID.
func RandomGUID() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return g, fmt.Errorf("random guid: %w", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

// String is the lower-case 8-4-4-4-12 form, as blkid prints PARTUUID.
func (g GUID) String() string {
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// IsZero reports whether g is all zeros (an unused entry, or "choose one").
func (g GUID) IsZero() bool { return g == GUID{} }

// mixedEndian is g as GPT stores it.
func (g GUID) mixedEndian() [16]byte {
	b := [16]byte(g)
	for _, r := range [][2]int{{0, 4}, {4, 6}, {6, 8}} {
		for i, j := r[0], r[1]-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
	}
	return b
}

// Partition is one partition to create. Size 0 means "the rest of the
// disk" and is allowed for the last partition only.
type Partition struct {
	Type GUID
	UUID GUID // zero: a random one is chosen
	Name string
	Size int64 // bytes; Layout rounds it up to Align

	// Set by Layout.
	FirstLBA, LastLBA uint64
}

// Offset is where the partition starts, in bytes.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// Bytes is the partition's length.
func (p Partition) Bytes() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a laid-out partition table for a disk of a given size.
type Table struct {
	DiskGUID   GUID
	DiskSize   int64
	Partitions []Partition
}

// Layout places parts on a disk of diskSize bytes, each starting on a
// 1 MiB boundary, and chooses the GUIDs left zero.
func Layout(diskSize int64, parts []Partition) (*Table, error) {
	if diskSize%SectorSize != 0 {
		return nil, fmt.Errorf("disk size %d is not a multiple of %d", diskSize, SectorSize)
	}
	if len(parts) == 0 || len(parts) > entryCount {
		return nil, fmt.Errorf("want 1 to %d partitions, got %d", entryCount, len(parts))
	}
	total := uint64(diskSize / SectorSize)
	// The backup entry array and header take the last 33 sectors.
	if total < 2*(1+entrySectors)+2 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a GPT", diskSize)
	}
	lastUsable := total - 1 - entrySectors - 1
	t := &Table{DiskSize: diskSize}
	var err error
	if t.DiskGUID, err = RandomGUID(); err != nil {
		return nil, err
	}
	const alignLBA = Align / SectorSize
	next := uint64(alignLBA)
	for i, p := range parts {
		if p.Type.IsZero() {
			return nil, fmt.Errorf("partition %d (%s): no type GUID", i+1, p.Name)
		}
		if len(utf16.Encode([]rune(p.Name))) > 36 {
			return nil, fmt.Errorf("partition %d: name %q is longer than 36 UTF-16 units", i+1, p.Name)
		}
		if p.UUID.IsZero() {
			if p.UUID, err = RandomGUID(); err != nil {
				return nil, err
			}
		}
		p.FirstLBA = next
		switch {
		case p.Size < 0:
			return nil, fmt.Errorf("partition %d (%s): negative size", i+1, p.Name)
		case p.Size == 0 && i != len(parts)-1:
			return nil, fmt.Errorf("partition %d (%s): only the last partition may take the rest of the disk", i+1, p.Name)
		case p.Size == 0:
			// The rest, ending on an alignment boundary as sfdisk does.
			end := (lastUsable + 1) / alignLBA * alignLBA
			if end <= p.FirstLBA {
				return nil, fmt.Errorf("partition %d (%s): no room left on a disk of %d bytes", i+1, p.Name, diskSize)
			}
			p.LastLBA = end - 1
		default:
			sectors := (uint64(p.Size) + Align - 1) / Align * alignLBA
			p.LastLBA = p.FirstLBA + sectors - 1
		}
		if p.LastLBA > lastUsable {
			return nil, fmt.Errorf("partition %d (%s) of %d bytes does not fit on a disk of %d bytes", i+1, p.Name, p.Size, diskSize)
		}
		p.Size = p.Bytes()
		next = p.LastLBA + 1
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

// Write writes the protective MBR, both headers and both entry arrays, and
// zeroes the rest of the first and last megabyte's table areas so that no
// older table or filesystem signature survives there.
func (t *Table) Write(w io.WriterAt) error {
	total := uint64(t.DiskSize / SectorSize)
	entries := make([]byte, entryCount*entrySize)
	le := binary.LittleEndian
	for i, p := range t.Partitions {
		e := entries[i*entrySize : (i+1)*entrySize]
		typ, id := p.Type.mixedEndian(), p.UUID.mixedEndian()
		copy(e[0:16], typ[:])
		copy(e[16:32], id[:])
		le.PutUint64(e[32:], p.FirstLBA)
		le.PutUint64(e[40:], p.LastLBA)
		for j, u := range utf16.Encode([]rune(p.Name)) {
			le.PutUint16(e[56+2*j:], u)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	backupEntries := total - 1 - entrySectors
	header := func(my, alternate, entryLBA uint64) []byte {
		h := make([]byte, SectorSize)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alternate)
		le.PutUint64(h[40:], 2+entrySectors)
		le.PutUint64(h[48:], backupEntries-1)
		g := t.DiskGUID.mixedEndian()
		copy(h[56:72], g[:])
		le.PutUint64(h[72:], entryLBA)
		le.PutUint32(h[80:], entryCount)
		le.PutUint32(h[84:], entrySize)
		le.PutUint32(h[88:], entriesCRC)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}

	head := make([]byte, Align)
	copy(head, protectiveMBR(total))
	copy(head[SectorSize:], header(1, total-1, 2))
	copy(head[2*SectorSize:], entries)
	tail := make([]byte, (1+entrySectors)*SectorSize)
	copy(tail, entries)
	copy(tail[entrySectors*SectorSize:], header(total-1, 1, backupEntries))
	if _, err := w.WriteAt(head, 0); err != nil {
		return fmt.Errorf("write primary gpt: %w", err)
	}
	if _, err := w.WriteAt(tail, int64(backupEntries)*SectorSize); err != nil {
		return fmt.Errorf("write backup gpt: %w", err)
	}
	return nil
}

// protectiveMBR is sector 0: one partition of type 0xEE covering the disk
// (or as much of it as 32 bits can say), so MBR-only tools keep off.
func protectiveMBR(totalSectors uint64) []byte {
	m := make([]byte, SectorSize)
	p := m[446:462]
	p[1], p[2], p[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	p[4] = 0xEE
	p[5], p[6], p[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(p[8:], 1)
	size := totalSectors - 1
	if size > 0xFFFFFFFF {
		size = 0xFFFFFFFF
	}
	binary.LittleEndian.PutUint32(p[12:], uint32(size))
	m[510], m[511] = 0x55, 0xAA
	return m
}
