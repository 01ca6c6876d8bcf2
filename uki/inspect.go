package uki

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cfsboot/tpm"
)

// Info describes a UKI: its sections, what the text ones say, its
// signatures and the PCR 11 values systemd-stub's measurements lead to.
type Info struct {
	Sections   []SectionInfo `json:"sections"`
	Cmdline    string        `json:"cmdline,omitempty"`
	OSRelease  string        `json:"os_release,omitempty"` // PRETTY_NAME, else NAME
	Uname      string        `json:"uname,omitempty"`
	Signatures []Signature   `json:"signatures"`
	PCR11      []PCRValue    `json:"pcr11"`
}

// SectionInfo is one PE section.
type SectionInfo struct {
	Name           string `json:"name"`
	VirtualSize    uint32 `json:"virtual_size"`
	VirtualAddress uint32 `json:"virtual_address"`
	RawSize        uint32 `json:"raw_size"`
	FileOffset     uint32 `json:"file_offset"`
	SHA256         string `json:"sha256"` // of the VirtualSize bytes
}

// PCRValue is PCR 11 in one bank after a boot phase path.
type PCRValue struct {
	Phase string `json:"phase"`
	Bank  string `json:"bank"`
	Value string `json:"value"`
}

// Inspect reads a UKI.
func Inspect(image []byte, banks []tpm.Bank) (*Info, error) {
	p, err := parsePE(image)
	if err != nil {
		return nil, err
	}
	measured, err := MeasuredSections(bytes.NewReader(image))
	if err != nil {
		return nil, err
	}
	var info Info
	for _, s := range p.sections {
		if s.VirtualSize > s.SizeOfRawData && s.VirtualSize-s.SizeOfRawData > maxZeroFill {
			return nil, fmt.Errorf("section %s: VirtualSize %d is implausibly larger than its %d bytes", s.Name, s.VirtualSize, s.SizeOfRawData)
		}
		sum := sha256.Sum256(sectionData(p, s))
		info.Sections = append(info.Sections, SectionInfo{
			Name: s.Name, VirtualSize: s.VirtualSize, VirtualAddress: s.VirtualAddress,
			RawSize: s.SizeOfRawData, FileOffset: s.PointerToRawData, SHA256: hex.EncodeToString(sum[:]),
		})
	}
	info.Cmdline = strings.TrimRight(string(measured[".cmdline"]), "\x00\n")
	info.Uname = strings.TrimRight(string(measured[".uname"]), "\x00\n")
	info.OSRelease = osReleaseName(measured[".osrel"])
	if info.Signatures, err = Signatures(image); err != nil && !errors.Is(err, ErrNotSigned) {
		return nil, err
	}
	for _, v := range tpm.PredictPCR11(measured, banks) {
		info.PCR11 = append(info.PCR11, PCRValue{Phase: v.Path, Bank: v.Bank, Value: hex.EncodeToString(v.Value)})
	}
	return &info, nil
}

// sectionData is a section's contents as loaded: VirtualSize bytes, those
// beyond the raw data zero-filled.
func sectionData(p *peFile, s peSection) []byte {
	data := make([]byte, s.VirtualSize)
	copy(data, p.data[s.PointerToRawData:][:min(s.SizeOfRawData, s.VirtualSize)])
	return data
}

// osReleaseName picks PRETTY_NAME, else NAME, from os-release text.
func osReleaseName(osrel []byte) string {
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(osrel))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `'"`)
		}
		fields[k] = v
	}
	if fields["PRETTY_NAME"] != "" {
		return fields["PRETTY_NAME"]
	}
	return fields["NAME"]
}
