// Package secureboot makes and enrolls a user's own UEFI Secure Boot keys:
// PK, KEK and db key pairs, EFI signature lists and time-based
// authenticated variables (UEFI 2.10 §8.2 and §32.4), written through
// efivarfs while the firmware is in setup mode.
package secureboot

import (
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is an EFI GUID, stored as the firmware lays it out: the first three
// fields little-endian.
type GUID [16]byte

// ParseGUID reads the text form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: not in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	copy(g[:], b)
	// Text order is big-endian; the first three fields are stored little-endian.
	g[0], g[1], g[2], g[3] = g[3], g[2], g[1], g[0]
	g[4], g[5] = g[5], g[4]
	g[6], g[7] = g[7], g[6]
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

var (
	// EFI_CERT_X509_GUID: a signature list of DER X.509 certificates.
	certX509GUID = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	// EFI_CERT_TYPE_PKCS7_GUID: the WIN_CERTIFICATE_UEFI_GUID of an authenticated variable.
	certTypePKCS7GUID = mustGUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
	// GlobalVariable is EFI_GLOBAL_VARIABLE, the vendor of PK, KEK, SetupMode, SecureBoot.
	GlobalVariable = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabase is EFI_IMAGE_SECURITY_DATABASE_GUID, the vendor of db and dbx.
	ImageSecurityDatabase = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
)

const eslHeaderSize = 16 + 4 + 4 + 4

// SignatureList is an EFI_SIGNATURE_LIST holding one X.509 certificate
// (DER) owned by owner, as efitools' cert-to-efi-sig-list writes it.
func SignatureList(owner GUID, certDER []byte) []byte {
	sigSize := 16 + len(certDER)
	b := make([]byte, 0, eslHeaderSize+sigSize)
	b = append(b, certX509GUID[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(eslHeaderSize+sigSize))
	b = binary.LittleEndian.AppendUint32(b, 0) // SignatureHeaderSize
	b = binary.LittleEndian.AppendUint32(b, uint32(sigSize))
	b = append(b, owner[:]...)
	return append(b, certDER...)
}

// EnrolledCert is one X.509 certificate found in a signature database.
type EnrolledCert struct {
	Owner GUID
	Cert  *x509.Certificate
}

// ParseSignatureLists reads concatenated EFI_SIGNATURE_LISTs (a db, KEK or
// PK variable's data) and returns their X.509 certificates; lists of
// other types (hashes) are skipped.
func ParseSignatureLists(data []byte) ([]EnrolledCert, error) {
	var out []EnrolledCert
	for off := 0; off < len(data); {
		rest := data[off:]
		if len(rest) < eslHeaderSize {
			return nil, fmt.Errorf("signature list at %d: %d bytes, shorter than its header", off, len(rest))
		}
		var typ GUID
		copy(typ[:], rest)
		listSize := binary.LittleEndian.Uint32(rest[16:])
		hdrSize := binary.LittleEndian.Uint32(rest[20:])
		sigSize := binary.LittleEndian.Uint32(rest[24:])
		if uint64(listSize) > uint64(len(rest)) || uint64(listSize) < eslHeaderSize+uint64(hdrSize) || sigSize < 16 {
			return nil, fmt.Errorf("signature list at %d: size %d, header %d, signature %d in %d bytes", off, listSize, hdrSize, sigSize, len(rest))
		}
		body := rest[eslHeaderSize+hdrSize : listSize]
		if uint32(len(body))%sigSize != 0 {
			return nil, fmt.Errorf("signature list at %d: %d bytes of signatures are not a multiple of %d", off, len(body), sigSize)
		}
		for ; typ == certX509GUID && len(body) > 0; body = body[sigSize:] {
			var owner GUID
			copy(owner[:], body)
			cert, err := x509.ParseCertificate(body[16:sigSize])
			if err != nil {
				return nil, fmt.Errorf("signature list at %d: certificate: %w", off, err)
			}
			out = append(out, EnrolledCert{Owner: owner, Cert: cert})
		}
		off += int(listSize)
	}
	return out, nil
}
