package uki

import (
	"bytes"
	"crypto/rsa"
	"encoding/binary"
	"fmt"
	"strings"
)

// Parts are the contents of a UKI's sections. Empty parts are left out.
type Parts struct {
	Linux     []byte // the kernel (a PE image with an EFI stub)
	Initrd    []byte
	Cmdline   []byte
	OSRelease []byte
	Uname     []byte
	Splash    []byte
	DTB       []byte
	Ucode     []byte
	// SBAT is the user's SBAT text ("sbat,1,..." then entries); nil means
	// the generic UKI entry ukify adds.
	SBAT []byte

	// PCRKey, when set, signs the PCR 11 policy of each of PCRBanks (default
	// sha256) for every boot phase path into .pcrsig, and its public key
	// goes into .pcrpkey.
	PCRKey   *rsa.PrivateKey
	PCRBanks []string
}

// sbatHeader is the line every SBAT section starts with, once.
const sbatHeader = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"

// defaultSBAT is what ukify adds when the user gives no SBAT of their own.
const defaultSBAT = sbatHeader + "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n"

// Build appends the parts as new sections after the last section of stub
// (a systemd-stub PE image), following ukify's layout rules: each section's
// VirtualSize is its data length, its address the previous section's end
// rounded up to SectionAlignment, its raw data at the file's end rounded up
// to FileAlignment; SizeOfImage is recomputed and CheckSum is zero. The
// stub's sections stay as they are, except .sbat, whose contents become the
// stub's, the kernel's and the user's SBAT entries merged (the stub measures
// and shim checks the first .sbat, so it cannot be a second section). The
// result depends only on the inputs, and is byte for byte what ukify 257
// (the stub's version) writes for them.
func Build(stub []byte, parts Parts) ([]byte, error) {
	p, err := parsePE(bytes.Clone(stub))
	if err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}
	if err := checkStub(p); err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}
	sbat, err := mergeSBAT(p, parts.Linux, parts.SBAT)
	if err != nil {
		return nil, err
	}
	pcrpkey, err := pcrPublicKeyPEM(parts.PCRKey)
	if err != nil {
		return nil, err
	}
	// ukify 257's order (the stub's version); systemd-stub finds sections
	// by name and measures them in its own fixed order.
	add := []struct {
		name string
		data []byte
	}{
		{".osrel", parts.OSRelease},
		{".cmdline", parts.Cmdline},
		{".dtb", parts.DTB},
		{".uname", parts.Uname},
		{".splash", parts.Splash},
		{".pcrpkey", pcrpkey},
		{".linux", parts.Linux},
		{".initrd", parts.Initrd},
		{".ucode", parts.Ucode},
		{".sbat", sbat},
	}
	measured := map[string][]byte{}
	for _, s := range add {
		if len(s.data) == 0 {
			continue
		}
		if err := p.addSection(s.name, s.data); err != nil {
			return nil, err
		}
		measured[s.name] = s.data
	}
	if parts.PCRKey != nil {
		sig, err := SignPCRPolicy(measured, parts.PCRKey, parts.PCRBanks)
		if err != nil {
			return nil, err
		}
		if err := p.addSection(".pcrsig", sig); err != nil {
			return nil, err
		}
	}
	last := p.sections[len(p.sections)-1]
	p.setU32(optSizeOfImage, roundUp(last.VirtualAddress+last.VirtualSize, p.u32(optSectionAlignment)))
	p.setU32(optCheckSum, 0)
	return p.data, nil
}

// checkStub refuses stubs Build cannot extend without rewriting them.
func checkStub(p *peFile) error {
	if off, _ := p.certTable(); off != 0 {
		return fmt.Errorf("already signed (a certificate table at %#x); extend the unsigned stub and sign the UKI", off)
	}
	if sym := binary.LittleEndian.Uint32(p.data[p.coff+8:]); sym != 0 {
		return fmt.Errorf("has a COFF symbol table at %#x (not stripped)", sym)
	}
	fa, sa := p.u32(optFileAlignment), p.u32(optSectionAlignment)
	if fa == 0 || fa&(fa-1) != 0 || sa < fa || sa&(sa-1) != 0 {
		return fmt.Errorf("bad alignment: FileAlignment %#x, SectionAlignment %#x", fa, sa)
	}
	if len(p.sections) == 0 {
		return fmt.Errorf("has no sections")
	}
	// The padding up to FileAlignment is room for new section headers:
	// the first section's data starts after it.
	hdr := roundUp(p.u32(optSizeOfHeaders), fa)
	for _, s := range p.sections {
		if s.PointerToRawData%fa != 0 {
			return fmt.Errorf("section %s: raw data at %#x is not aligned to FileAlignment %#x", s.Name, s.PointerToRawData, fa)
		}
		if s.SizeOfRawData != 0 && s.PointerToRawData < hdr {
			return fmt.Errorf("section %s: raw data at %#x overlaps the headers (%#x bytes)", s.Name, s.PointerToRawData, hdr)
		}
	}
	p.setU32(optSizeOfHeaders, hdr)
	return nil
}

// addSection appends a section after the last one, or, for a name the stub
// already has (.sbat), replaces that section's data in place.
func (p *peFile) addSection(name string, data []byte) error {
	if len(name) > 8 {
		return fmt.Errorf("section name %q is longer than 8 bytes", name)
	}
	fa, sa := p.u32(optFileAlignment), p.u32(optSectionAlignment)
	if uint64(len(data)) > 1<<31 {
		return fmt.Errorf("section %s: %d bytes is too large for a PE image", name, len(data))
	}
	size := uint32(len(data))
	if i := p.section(name); i >= 0 {
		s := &p.sections[i]
		if size > s.SizeOfRawData {
			return fmt.Errorf("section %s: %d bytes do not fit in the stub's section of %d bytes", name, size, s.SizeOfRawData)
		}
		raw := p.data[s.PointerToRawData:][:s.SizeOfRawData]
		clear(raw)
		copy(raw, data)
		s.VirtualSize = size
		p.writeSectionHeader(i)
		return nil
	}
	n := len(p.sections)
	if end := p.sectTbl + (n+1)*sectionHeaderSize; uint32(end) > p.u32(optSizeOfHeaders) {
		return fmt.Errorf("section %s: no room for another section header (the headers end at %#x)", name, p.u32(optSizeOfHeaders))
	}
	last := p.sections[n-1]
	s := peSection{
		Name:             name,
		VirtualSize:      size,
		VirtualAddress:   roundUp(last.VirtualAddress+last.VirtualSize, sa),
		SizeOfRawData:    roundUp(size, fa),
		PointerToRawData: roundUp(uint32(len(p.data)), fa),
		Characteristics:  scnMemRead | scnCntInitializedData,
	}
	if name == ".linux" {
		// Old kernels booted through the EFI handover protocol run in place.
		s.Characteristics = scnMemRead | scnCntCode
	}
	p.data = append(p.data, make([]byte, int(s.PointerToRawData)-len(p.data))...)
	p.data = append(p.data, data...)
	p.data = append(p.data, make([]byte, int(s.SizeOfRawData)-len(data))...)
	p.sections = append(p.sections, s)
	p.writeSectionHeader(n)
	binary.LittleEndian.PutUint16(p.data[p.coff+2:], uint16(n+1))
	p.setU32(optSizeOfInitializedData, p.u32(optSizeOfInitializedData)+size)
	return nil
}

// mergeSBAT joins the SBAT entries of the stub, of the kernel (when it is a
// PE image with a .sbat section) and of the user (or ukify's default UKI
// entry) under one header line, as ukify does.
func mergeSBAT(stub *peFile, kernel, user []byte) ([]byte, error) {
	var entries []string
	take := func(what string, text []byte) error {
		lines := strings.Split(strings.TrimRight(string(bytes.TrimRight(text, "\x00")), "\n"), "\n")
		if !strings.HasPrefix(lines[0], "sbat,") {
			return fmt.Errorf("%s SBAT does not start with the sbat, header line", what)
		}
		entries = append(entries, lines[1:]...)
		return nil
	}
	if i := stub.section(".sbat"); i >= 0 {
		s := stub.sections[i]
		if err := take("stub's", stub.data[s.PointerToRawData:][:min(s.VirtualSize, s.SizeOfRawData)]); err != nil {
			return nil, err
		}
	}
	if k, err := parsePE(kernel); err == nil {
		if i := k.section(".sbat"); i >= 0 {
			s := k.sections[i]
			if err := take("kernel's", k.data[s.PointerToRawData:][:min(s.VirtualSize, s.SizeOfRawData)]); err != nil {
				return nil, err
			}
		}
	}
	if user == nil {
		user = []byte(defaultSBAT)
	}
	if err := take("the given", user); err != nil {
		return nil, err
	}
	return []byte(sbatHeader + strings.Join(entries, "\n") + "\n\x00"), nil
}
