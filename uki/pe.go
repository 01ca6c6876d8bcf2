package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// peFile is the part of a PE image's layout that building and signing a UKI
// change: header offsets, the alignment rules and the section table. It works
// on the file's bytes in place, so that what it does not know stays as it was.
type peFile struct {
	data     []byte
	coff     int // offset of the COFF file header (after "PE\0\0")
	opt      int // offset of the optional header
	dataDirs int // offset of the data directories
	numDirs  int
	sectTbl  int // offset of the section table
	sections []peSection
}

// peSection is one entry of the section table.
type peSection struct {
	Name             string
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
	Characteristics  uint32
}

const (
	sectionHeaderSize = 40
	dirSecurity       = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY: the certificate table

	scnCntCode            = 0x00000020
	scnCntInitializedData = 0x00000040
	scnMemRead            = 0x40000000
)

// Optional header fields at the same offset in PE32 and PE32+.
const (
	optSizeOfCode            = 4
	optSizeOfInitializedData = 8
	optSectionAlignment      = 32
	optFileAlignment         = 36
	optSizeOfImage           = 56
	optSizeOfHeaders         = 60
	optCheckSum              = 64
)

var errNotPE = errors.New("not a PE image")

// parsePE reads the headers and section table of a PE image, checking every
// offset against the file size.
func parsePE(data []byte) (*peFile, error) {
	if len(data) < 0x40 || string(data[:2]) != "MZ" {
		return nil, errNotPE
	}
	peOff := int(binary.LittleEndian.Uint32(data[0x3c:]))
	if peOff < 0x40 || peOff > len(data)-24 || string(data[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("%w: no PE signature at %#x", errNotPE, peOff)
	}
	p := &peFile{data: data, coff: peOff + 4, opt: peOff + 24}
	nsect := int(binary.LittleEndian.Uint16(data[p.coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(data[p.coff+16:]))
	if p.opt+optSize > len(data) || optSize < 2 {
		return nil, fmt.Errorf("optional header of %d bytes runs past the end of the file", optSize)
	}
	var numDirsOff int
	switch magic := binary.LittleEndian.Uint16(data[p.opt:]); magic {
	case 0x10b: // PE32
		numDirsOff, p.dataDirs = 92, 96
	case 0x20b: // PE32+
		numDirsOff, p.dataDirs = 108, 112
	default:
		return nil, fmt.Errorf("unknown optional header magic %#x", magic)
	}
	if p.dataDirs > optSize {
		return nil, fmt.Errorf("optional header of %d bytes has no data directories", optSize)
	}
	p.numDirs = int(binary.LittleEndian.Uint32(data[p.opt+numDirsOff:]))
	if p.numDirs > (optSize-p.dataDirs)/8 {
		return nil, fmt.Errorf("%d data directories do not fit in an optional header of %d bytes", p.numDirs, optSize)
	}
	p.dataDirs += p.opt
	p.sectTbl = p.opt + optSize
	if p.sectTbl+nsect*sectionHeaderSize > len(data) {
		return nil, fmt.Errorf("section table of %d entries runs past the end of the file", nsect)
	}
	for i := range nsect {
		h := data[p.sectTbl+i*sectionHeaderSize:]
		s := peSection{
			Name:             strings.TrimRight(string(h[:8]), "\x00"),
			VirtualSize:      binary.LittleEndian.Uint32(h[8:]),
			VirtualAddress:   binary.LittleEndian.Uint32(h[12:]),
			SizeOfRawData:    binary.LittleEndian.Uint32(h[16:]),
			PointerToRawData: binary.LittleEndian.Uint32(h[20:]),
			Characteristics:  binary.LittleEndian.Uint32(h[36:]),
		}
		if uint64(s.PointerToRawData)+uint64(s.SizeOfRawData) > uint64(len(data)) {
			return nil, fmt.Errorf("section %q: raw data [%#x, +%#x) runs past the end of the file (%#x)", s.Name, s.PointerToRawData, s.SizeOfRawData, len(data))
		}
		p.sections = append(p.sections, s)
	}
	if hdr := p.u32(optSizeOfHeaders); int64(hdr) > int64(len(data)) {
		return nil, fmt.Errorf("SizeOfHeaders %#x is past the end of the file", hdr)
	}
	return p, nil
}

func (p *peFile) u32(optField int) uint32 { return binary.LittleEndian.Uint32(p.data[p.opt+optField:]) }
func (p *peFile) setU32(optField int, v uint32) {
	binary.LittleEndian.PutUint32(p.data[p.opt+optField:], v)
}

// dataDir returns the offset in the file of data directory i's entry, or
// -1 when the image has fewer directories.
func (p *peFile) dataDir(i int) int {
	if i >= p.numDirs {
		return -1
	}
	return p.dataDirs + 8*i
}

// certTable returns the certificate table's file offset and size (zero when
// the image is unsigned).
func (p *peFile) certTable() (off, size uint32) {
	d := p.dataDir(dirSecurity)
	if d < 0 {
		return 0, 0
	}
	return binary.LittleEndian.Uint32(p.data[d:]), binary.LittleEndian.Uint32(p.data[d+4:])
}

func (p *peFile) setCertTable(off, size uint32) error {
	d := p.dataDir(dirSecurity)
	if d < 0 {
		return fmt.Errorf("image has %d data directories, none for the certificate table", p.numDirs)
	}
	binary.LittleEndian.PutUint32(p.data[d:], off)
	binary.LittleEndian.PutUint32(p.data[d+4:], size)
	return nil
}

// writeSectionHeader stores section i's entry into the section table.
func (p *peFile) writeSectionHeader(i int) {
	s := p.sections[i]
	h := p.data[p.sectTbl+i*sectionHeaderSize:][:sectionHeaderSize]
	clear(h)
	copy(h[:8], s.Name)
	binary.LittleEndian.PutUint32(h[8:], s.VirtualSize)
	binary.LittleEndian.PutUint32(h[12:], s.VirtualAddress)
	binary.LittleEndian.PutUint32(h[16:], s.SizeOfRawData)
	binary.LittleEndian.PutUint32(h[20:], s.PointerToRawData)
	binary.LittleEndian.PutUint32(h[36:], s.Characteristics)
}

func (p *peFile) section(name string) int {
	return slices.IndexFunc(p.sections, func(s peSection) bool { return s.Name == name })
}

func roundUp(x, align uint32) uint32 { return (x + align - 1) / align * align }
