package secureboot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// KeyPair is a Secure Boot signing key and its self-signed certificate.
type KeyPair struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// Keys are a user's PK, KEK and db key pairs and the owner GUID of their
// signature list entries, stored as sbctl stores them:
// DIR/GUID and DIR/keys/{PK,KEK,db}/{PK,KEK,db}.{key,pem}.
type Keys struct {
	Owner       GUID
	PK, KEK, DB KeyPair
}

// Key names in the order they are enrolled: PK last, since writing it ends
// setup mode.
var keyNames = []string{"db", "KEK", "PK"}

func (k *Keys) pair(name string) *KeyPair {
	switch name {
	case "PK":
		return &k.PK
	case "KEK":
		return &k.KEK
	default:
		return &k.DB
	}
}

func keyPaths(dir, name string) (key, cert string) {
	base := filepath.Join(dir, "keys", name, name)
	return base + ".key", base + ".pem"
}

// CreateKeys makes new RSA 2048 key pairs with self-signed certificates
// (CN "<name> PK" etc., valid for 5 years like sbctl's) and a random
// owner GUID in dir, refusing to overwrite existing keys.
func CreateKeys(dir, name string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, "GUID")); err == nil {
		return nil, fmt.Errorf("%s already holds keys (a GUID file)", dir)
	}
	var k Keys
	if _, err := rand.Read(k.Owner[:]); err != nil {
		return nil, err
	}
	k.Owner[7] = k.Owner[7]&0x0f | 0x40 // version 4 (byte 7 is the high byte of the little-endian third field)
	k.Owner[8] = k.Owner[8]&0x3f | 0x80 // RFC 4122 variant
	now := time.Now()
	for _, n := range keyNames {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: name + " " + n},
			NotBefore:    now,
			NotAfter:     now.AddDate(5, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", n, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		*k.pair(n) = KeyPair{Key: key, Cert: cert}
	}
	return &k, k.save(dir)
}

func (k *Keys) save(dir string) error {
	for _, n := range keyNames {
		p := k.pair(n)
		keyPath, certPath := keyPaths(dir, n)
		if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(p.Key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw}), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "GUID"), []byte(k.Owner.String()), 0o644)
}

// LoadKeys reads keys from dir (as CreateKeys or sbctl wrote them).
func LoadKeys(dir string) (*Keys, error) {
	var k Keys
	guid, err := os.ReadFile(filepath.Join(dir, "GUID"))
	if err != nil {
		return nil, err
	}
	if k.Owner, err = ParseGUID(string(guid)); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "GUID"), err)
	}
	for _, n := range keyNames {
		keyPath, certPath := keyPaths(dir, n)
		p := k.pair(n)
		if p.Key, err = LoadPrivateKey(keyPath); err != nil {
			return nil, err
		}
		if p.Cert, err = LoadCertificate(certPath); err != nil {
			return nil, err
		}
		if !p.Key.PublicKey.Equal(p.Cert.PublicKey) {
			return nil, fmt.Errorf("%s does not hold the key of %s", keyPath, certPath)
		}
	}
	return &k, nil
}

// LoadPrivateKey reads a PEM RSA private key (PKCS#1 or PKCS#8).
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if block.Type == "RSA PRIVATE KEY" {
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T key, want RSA", path, key)
	}
	return rsaKey, nil
}

// LoadCertificate reads a PEM or DER X.509 certificate.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q, want CERTIFICATE", path, block.Type)
		}
		data = block.Bytes
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// Variable is one Secure Boot database to write: its signature list and
// the authenticated payload that writes it.
type Variable struct {
	Name   string
	Vendor GUID
	ESL    []byte
	Auth   []byte
}

// Variables returns db (signed by KEK), KEK (signed by PK) and PK (signed
// by itself), each holding its own certificate, timestamped ts, in the
// order they must be enrolled.
func (k *Keys) Variables(ts time.Time) ([]Variable, error) {
	signer := map[string]*KeyPair{"db": &k.KEK, "KEK": &k.PK, "PK": &k.PK}
	var out []Variable
	for _, n := range keyNames {
		vendor := GlobalVariable
		if n == "db" {
			vendor = ImageSecurityDatabase
		}
		esl := SignatureList(k.Owner, k.pair(n).Cert.Raw)
		auth, err := AuthenticatedVariable(n, vendor, ts, esl, signer[n].Key, signer[n].Cert)
		if err != nil {
			return nil, err
		}
		out = append(out, Variable{Name: n, Vendor: vendor, ESL: esl, Auth: auth})
	}
	return out, nil
}

// Export writes each variable's NAME.esl and NAME.auth into dir.
func Export(vars []Variable, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, v := range vars {
		errs = append(errs, os.WriteFile(filepath.Join(dir, v.Name+".esl"), v.ESL, 0o644),
			os.WriteFile(filepath.Join(dir, v.Name+".auth"), v.Auth, 0o644))
	}
	return errors.Join(errs...)
}
