package uki

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
)

// WIN_CERTIFICATE: an entry of the PE certificate table.
const (
	winCertHeaderSize  = 8
	winCertRevision    = 0x0200
	winCertTypePKCS7   = 0x0002
	certTableAlignment = 8
)

// ErrNotSigned is returned for an image without a certificate table.
var ErrNotSigned = errors.New("no certificate table (the image is not signed)")

// imageHash computes the Authenticode hash of a PE image: the headers
// without CheckSum and the certificate table's directory entry, the
// sections' raw data in file order, then whatever follows them up to the
// certificate table.
func (p *peFile) imageHash(h hash.Hash) error {
	sum := p.opt + optCheckSum
	dir := p.dataDir(dirSecurity)
	hdr := int(p.u32(optSizeOfHeaders))
	if dir < 0 || hdr < dir+8 {
		return fmt.Errorf("headers end at %#x, before the certificate table's directory entry", hdr)
	}
	h.Write(p.data[:sum])
	h.Write(p.data[sum+4 : dir])
	h.Write(p.data[dir+8 : hdr])
	sections := slices.Clone(p.sections)
	slices.SortStableFunc(sections, func(a, b peSection) int { return int(a.PointerToRawData) - int(b.PointerToRawData) })
	end := hdr
	for _, s := range sections {
		if s.SizeOfRawData == 0 {
			continue
		}
		h.Write(p.data[s.PointerToRawData:][:s.SizeOfRawData])
		end = max(end, int(s.PointerToRawData+s.SizeOfRawData))
	}
	tail := len(p.data)
	if off, size := p.certTable(); off != 0 {
		if uint64(off)+uint64(size) != uint64(len(p.data)) || int(off) < end {
			return fmt.Errorf("certificate table [%#x, +%#x) is not at the end of the file (%#x bytes, sections end at %#x)", off, size, len(p.data), end)
		}
		tail = int(off)
	}
	if tail > end {
		h.Write(p.data[end:tail])
	}
	return nil
}

// ImageHash returns the SHA-256 Authenticode hash of a PE image.
func ImageHash(image []byte) ([]byte, error) {
	p, err := parsePE(image)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if err := p.imageHash(h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// Sign adds an Authenticode signature (PKCS#7 SignedData over the image's
// SHA-256 hash, signed by key, carrying cert) to an unsigned PE image: the
// image is padded to 8 bytes, the signature appended as a WIN_CERTIFICATE,
// the certificate table's directory entry pointed at it and the PE
// checksum recomputed.
func Sign(image []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	data := bytes.Clone(image)
	if pad := len(data) % certTableAlignment; pad != 0 {
		data = append(data, make([]byte, certTableAlignment-pad)...)
	}
	p, err := parsePE(data)
	if err != nil {
		return nil, err
	}
	if off, _ := p.certTable(); off != 0 {
		return nil, fmt.Errorf("image is already signed (a certificate table at %#x)", off)
	}
	h := sha256.New()
	if err := p.imageHash(h); err != nil {
		return nil, err
	}
	sig, err := signPKCS7(h.Sum(nil), key, cert)
	if err != nil {
		return nil, err
	}
	entry := make([]byte, roundUp(uint32(winCertHeaderSize+len(sig)), certTableAlignment))
	binary.LittleEndian.PutUint32(entry, uint32(winCertHeaderSize+len(sig)))
	binary.LittleEndian.PutUint16(entry[4:], winCertRevision)
	binary.LittleEndian.PutUint16(entry[6:], winCertTypePKCS7)
	copy(entry[winCertHeaderSize:], sig)
	if err := p.setCertTable(uint32(len(p.data)), uint32(len(entry))); err != nil {
		return nil, err
	}
	p.data = append(p.data, entry...)
	p.setU32(optCheckSum, p.checksum())
	return p.data, nil
}

// checksum is the PE image checksum (the 16-bit one's complement sum of
// the file without the CheckSum field, plus the file size).
func (p *peFile) checksum() uint32 {
	skip := p.opt + optCheckSum
	var sum uint32
	for i := 0; i < len(p.data); i += 2 {
		if i == skip || i == skip+2 {
			continue
		}
		w := uint32(p.data[i])
		if i+1 < len(p.data) {
			w |= uint32(p.data[i+1]) << 8
		}
		sum += w
		sum = sum&0xffff + sum>>16
	}
	return sum + uint32(len(p.data))
}

// Signature describes one Authenticode signature of an image.
type Signature struct {
	Subject   string `json:"subject"`
	Issuer    string `json:"issuer"`
	ImageHash []byte `json:"image_hash"`
	// HashMatches: the signed hash is the image's (the image was not
	// changed after signing).
	HashMatches bool `json:"hash_matches"`
}

// signatures parses every PKCS#7 entry of the image's certificate table.
func signatures(image []byte) ([]*pkcs7Signature, []byte, error) {
	p, err := parsePE(image)
	if err != nil {
		return nil, nil, err
	}
	h := sha256.New()
	if err := p.imageHash(h); err != nil {
		return nil, nil, err
	}
	off, size := p.certTable()
	if off == 0 {
		return nil, h.Sum(nil), ErrNotSigned
	}
	table := p.data[off:][:size]
	var out []*pkcs7Signature
	for len(table) > 0 {
		if len(table) < winCertHeaderSize {
			return nil, nil, fmt.Errorf("certificate table: %d stray bytes at its end", len(table))
		}
		n := binary.LittleEndian.Uint32(table)
		if n < winCertHeaderSize || uint64(n) > uint64(len(table)) {
			return nil, nil, fmt.Errorf("certificate table: entry of %d bytes in %d", n, len(table))
		}
		if typ := binary.LittleEndian.Uint16(table[6:]); typ == winCertTypePKCS7 {
			ps, err := parsePKCS7(table[winCertHeaderSize:n])
			if err != nil {
				return nil, nil, err
			}
			out = append(out, ps)
		}
		table = table[min(uint64(len(table)), (uint64(n)+certTableAlignment-1)&^(certTableAlignment-1)):]
	}
	return out, h.Sum(nil), nil
}

// Signatures lists an image's Authenticode signatures (none, with
// ErrNotSigned, for an unsigned image).
func Signatures(image []byte) ([]Signature, error) {
	sigs, hash, err := signatures(image)
	if err != nil {
		return nil, err
	}
	var out []Signature
	for _, s := range sigs {
		out = append(out, Signature{
			Subject: s.Signer.Subject.String(), Issuer: s.Signer.Issuer.String(),
			ImageHash: s.ImageHash, HashMatches: bytes.Equal(s.ImageHash, hash),
		})
	}
	return out, nil
}

// Verify checks that one of the image's signatures covers the image as it
// is and was made by trusted or a certificate it issued.
func Verify(image []byte, trusted *x509.Certificate) error {
	sigs, hash, err := signatures(image)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range sigs {
		switch {
		case !bytes.Equal(s.ImageHash, hash):
			errs = append(errs, fmt.Errorf("signature by %q is for image hash %x, the image's is %x", s.Signer.Subject, s.ImageHash, hash))
		case !s.chainsTo(trusted):
			errs = append(errs, fmt.Errorf("signer %q is not %q nor issued by it", s.Signer.Subject, trusted.Subject))
		default:
			if err := s.verify(); err != nil {
				errs = append(errs, err)
				continue
			}
			return nil
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("certificate table holds no PKCS#7 signature")
	}
	return errors.Join(errs...)
}
