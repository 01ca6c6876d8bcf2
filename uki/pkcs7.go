package uki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Authenticode is PKCS#7 SignedData whose content is an
// SpcIndirectDataContent: the PE image's hash. Generic PKCS#7 packages wrap
// content in an OCTET STRING and digest all of it; Authenticode needs the
// SEQUENCE itself as content and the digest over its contents octets only,
// hence this small encoder and parser.

var (
	oidSignedData         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectData    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	oidContentType        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSHA256             = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	tagContext0           = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagContext1           = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagContext2           = cbasn1.Tag(2).ContextSpecific().Constructed()
	obsoleteFileLinkBMP   = utf16BE("<<<Obsolete>>>")
	errMalformedSignature = errors.New("malformed Authenticode signature")
)

func utf16BE(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1NULL()
	})
}

// spcIndirectData encodes SpcIndirectDataContent for a PE image hash, as
// sbsign and signtool write it (an empty flags BIT STRING and the
// "<<<Obsolete>>>" file link).
func spcIndirectData(digest []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSpcPEImageData)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SpcPeImageData
				b.AddASN1BitString(nil)
				b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { // file [0] SpcLink
					b.AddASN1(tagContext2, func(b *cryptobyte.Builder) { // file [2] SpcString
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { // unicode [0] BMPString
							b.AddBytes(obsoleteFileLinkBMP)
						})
					})
				})
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DigestInfo
			addAlgorithm(b, oidSHA256)
			b.AddASN1OctetString(digest)
		})
	})
	return b.Bytes()
}

// contentsOctets returns a DER element's contents (without tag and length).
func contentsOctets(der []byte) []byte {
	s := cryptobyte.String(der)
	var inner cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&inner, &tag) {
		return nil
	}
	return inner
}

// signedAttributes encodes the authenticated attributes (content type,
// opus info, message digest) as the SET that is signed, DER-sorted.
func signedAttributes(content []byte) ([]byte, error) {
	md := sha256.Sum256(contentsOctets(content))
	attr := func(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	attrs := [][]byte{
		attr(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSpcIndirectData) }),
		attr(oidSpcSpOpusInfo, func(b *cryptobyte.Builder) { b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) }),
		attr(oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) }),
	}
	slices.SortFunc(attrs, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	return b.Bytes()
}

// signPKCS7 makes the Authenticode SignedData for a SHA-256 PE image hash.
func signPKCS7(imageHash []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("signing key is %T: UEFI firmware verifies RSA Authenticode signatures only", key.Public())
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, errors.New("signing key does not match the certificate's public key")
	}
	content, err := spcIndirectData(imageHash)
	if err != nil {
		return nil, err
	}
	attrs, err := signedAttributes(content)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(attrs)
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, oidSHA256) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidSpcIndirectData)
					b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(content) })
				})
				b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
							b.AddASN1BigInt(cert.SerialNumber)
						})
						addAlgorithm(b, oidSHA256)
						b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { b.AddBytes(contentsOctets(attrs)) })
						addAlgorithm(b, oidRSAEncryption)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.Bytes()
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// pkcs7Signature is what an Authenticode signature holds, parsed.
type pkcs7Signature struct {
	ImageHash    []byte              // from SpcIndirectDataContent
	Signer       *x509.Certificate   // the certificate named by the SignerInfo
	Certificates []*x509.Certificate // all certificates carried
	content      []byte              // SpcIndirectDataContent, DER
	attrs        []byte              // authenticated attributes, contents octets
	signature    []byte
}

// parsePKCS7 reads an Authenticode SignedData (one signer, SHA-256).
func parsePKCS7(der []byte) (*pkcs7Signature, error) {
	var (
		in, ci, sd, eci, certs, signers, si cryptobyte.String
		oid                                 asn1.ObjectIdentifier
		version                             int64
		ps                                  pkcs7Signature
	)
	bad := func(what string) (*pkcs7Signature, error) {
		return nil, fmt.Errorf("%w: %s", errMalformedSignature, what)
	}
	in = der
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) {
		return bad("not PKCS#7 SignedData")
	}
	var explicit cryptobyte.String
	if !ci.ReadASN1(&explicit, tagContext0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return bad("no SignedData content")
	}
	if !sd.ReadASN1Integer(&version) || !sd.SkipASN1(cbasn1.SET) || !sd.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return bad("SignedData header")
	}
	if !eci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSpcIndirectData) {
		return bad("content is not SpcIndirectDataContent")
	}
	var content cryptobyte.String
	if !eci.ReadASN1(&explicit, tagContext0) || !explicit.ReadASN1Element(&content, cbasn1.SEQUENCE) {
		return bad("no SpcIndirectDataContent")
	}
	ps.content = content
	var err error
	if ps.ImageHash, err = parseSpcIndirectData(content); err != nil {
		return nil, err
	}
	if sd.PeekASN1Tag(tagContext0) {
		if !sd.ReadASN1(&certs, tagContext0) {
			return bad("certificates")
		}
		for !certs.Empty() {
			var c cryptobyte.String
			if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
				return bad("certificate")
			}
			cert, err := x509.ParseCertificate(c)
			if err != nil {
				return nil, fmt.Errorf("%w: certificate: %w", errMalformedSignature, err)
			}
			ps.Certificates = append(ps.Certificates, cert)
		}
	}
	if sd.PeekASN1Tag(tagContext1) && !sd.SkipASN1(tagContext1) {
		return bad("CRLs")
	}
	if !sd.ReadASN1(&signers, cbasn1.SET) || !signers.ReadASN1(&si, cbasn1.SEQUENCE) || !signers.Empty() {
		return bad("not exactly one SignerInfo")
	}
	var ias, issuer, alg, attrs cryptobyte.String
	serial := new(big.Int)
	if !si.ReadASN1Integer(&version) || !si.ReadASN1(&ias, cbasn1.SEQUENCE) ||
		!ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !ias.ReadASN1Integer(serial) {
		return bad("SignerInfo issuer and serial number")
	}
	if !si.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSHA256) {
		return bad("SignerInfo digest algorithm is not SHA-256")
	}
	if !si.ReadASN1(&attrs, tagContext0) {
		return bad("no authenticated attributes")
	}
	ps.attrs = attrs
	if !si.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !(oid.Equal(oidRSAEncryption) || oid.Equal(oidSHA256WithRSA)) {
		return bad("signature algorithm is not RSA")
	}
	var sig cryptobyte.String
	if !si.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return bad("signature value")
	}
	ps.signature = sig
	for _, c := range ps.Certificates {
		if bytes.Equal(c.RawIssuer, issuer) && c.SerialNumber.Cmp(serial) == 0 {
			ps.Signer = c
		}
	}
	if ps.Signer == nil {
		return bad("the signer's certificate is not included")
	}
	return &ps, nil
}

// parseSpcIndirectData returns the SHA-256 image hash an
// SpcIndirectDataContent carries.
func parseSpcIndirectData(der cryptobyte.String) ([]byte, error) {
	var idc, digestInfo, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	var digest []byte
	if !der.ReadASN1(&idc, cbasn1.SEQUENCE) || !idc.SkipASN1(cbasn1.SEQUENCE) ||
		!idc.ReadASN1(&digestInfo, cbasn1.SEQUENCE) || !digestInfo.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) || !digestInfo.ReadASN1Bytes(&digest, cbasn1.OCTET_STRING) {
		return nil, fmt.Errorf("%w: SpcIndirectDataContent", errMalformedSignature)
	}
	if !oid.Equal(oidSHA256) || len(digest) != sha256.Size {
		return nil, fmt.Errorf("%w: image digest is not SHA-256 (%v)", errMalformedSignature, oid)
	}
	return digest, nil
}

// verify checks the signature itself: the authenticated attributes name
// the content and carry its digest, and the signer's key signed them.
func (ps *pkcs7Signature) verify() error {
	var contentType, messageDigest bool
	attrs := cryptobyte.String(ps.attrs)
	for !attrs.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !a.ReadASN1(&values, cbasn1.SET) {
			return fmt.Errorf("%w: authenticated attribute", errMalformedSignature)
		}
		switch {
		case oid.Equal(oidContentType):
			var ct asn1.ObjectIdentifier
			contentType = values.ReadASN1ObjectIdentifier(&ct) && ct.Equal(oidSpcIndirectData)
		case oid.Equal(oidMessageDigest):
			var md []byte
			want := sha256.Sum256(contentsOctets(ps.content))
			messageDigest = values.ReadASN1Bytes(&md, cbasn1.OCTET_STRING) && bytes.Equal(md, want[:])
		}
	}
	if !contentType || !messageDigest {
		return errors.New("the authenticated attributes do not match the signed content")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(ps.attrs) })
	signed, err := b.Bytes()
	if err != nil {
		return err
	}
	pub, ok := ps.Signer.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("signer key is %T, not RSA", ps.Signer.PublicKey)
	}
	h := sha256.Sum256(signed)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], ps.signature); err != nil {
		return fmt.Errorf("signature by %q: %w", ps.Signer.Subject, err)
	}
	return nil
}

// chainsTo reports whether the signer is trusted, or was issued (through
// certificates the signature carries) by trusted, as UEFI firmware checks
// a db entry.
func (ps *pkcs7Signature) chainsTo(trusted *x509.Certificate) bool {
	c := ps.Signer
	for range 8 {
		if c.Equal(trusted) || c.CheckSignatureFrom(trusted) == nil {
			return true
		}
		i := slices.IndexFunc(ps.Certificates, func(p *x509.Certificate) bool {
			return !p.Equal(c) && bytes.Equal(p.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(p) == nil
		})
		if i < 0 {
			return false
		}
		c = ps.Certificates[i]
	}
	return false
}
