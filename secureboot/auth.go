package secureboot

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Variable attributes of the Secure Boot databases.
const (
	AttrNonVolatile                       = 0x01
	AttrBootserviceAccess                 = 0x02
	AttrRuntimeAccess                     = 0x04
	AttrTimeBasedAuthenticatedWriteAccess = 0x20
	secureBootAttrs                       = AttrNonVolatile | AttrBootserviceAccess | AttrRuntimeAccess | AttrTimeBasedAuthenticatedWriteAccess

	winCertTypeEFIGUID = 0x0ef1
	winCertRevision    = 0x0200
)

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
)

// efiTime encodes an EFI_TIME (UTC, no nanoseconds, as efitools writes).
func efiTime(t time.Time) []byte {
	t = t.UTC()
	b := binary.LittleEndian.AppendUint16(nil, uint16(t.Year()))
	b = append(b, byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0)
	return append(b, make([]byte, 8)...) // Nanosecond, TimeZone, Daylight, Pad2
}

// AuthenticatedVariable is the payload that writes a time-based
// authenticated variable (an .auth file, as efitools' sign-efi-sig-list
// writes it): EFI_VARIABLE_AUTHENTICATION_2 (timestamp and a
// WIN_CERTIFICATE_UEFI_GUID holding a detached PKCS#7 SignedData over
// name, vendor, attributes, timestamp and data) followed by the data.
func AuthenticatedVariable(name string, vendor GUID, ts time.Time, data []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("variable %s: signing key is %T, firmware accepts RSA", name, key.Public())
	}
	stamp := efiTime(ts)
	var signed []byte
	for _, u := range utf16.Encode([]rune(name)) {
		signed = binary.LittleEndian.AppendUint16(signed, u)
	}
	signed = append(signed, vendor[:]...)
	signed = binary.LittleEndian.AppendUint32(signed, secureBootAttrs)
	signed = append(signed, stamp...)
	signed = append(signed, data...)
	h := sha256.Sum256(signed)
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("variable %s: signing: %w", name, err)
	}
	p7, err := detachedSignedData(cert, sig)
	if err != nil {
		return nil, err
	}
	out := append([]byte{}, stamp...)
	out = binary.LittleEndian.AppendUint32(out, uint32(8+16+len(p7)))
	out = binary.LittleEndian.AppendUint16(out, winCertRevision)
	out = binary.LittleEndian.AppendUint16(out, winCertTypeEFIGUID)
	out = append(out, certTypePKCS7GUID[:]...)
	out = append(out, p7...)
	return append(out, data...), nil
}

// detachedSignedData is a PKCS#7 SignedData (without the ContentInfo
// wrapper, as UEFI wants it) with no content and no authenticated
// attributes: the signature is over the data's digest itself.
func detachedSignedData(cert *x509.Certificate, sig []byte) ([]byte, error) {
	alg := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1NULL()
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { alg(b, oidSHA256) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(cert.RawIssuer)
					b.AddASN1BigInt(cert.SerialNumber)
				})
				alg(b, oidSHA256)
				alg(b, oidRSAEncryption)
				b.AddASN1OctetString(sig)
			})
		})
	})
	return b.Bytes()
}
