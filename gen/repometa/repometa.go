// Package repometa reads and writes meta.json, the repository metadata of
// composefs-rs (cfsctl) and bootc: the repository format version, the
// fs-verity algorithm naming its objects, feature flags and the EROFS
// formats its images are committed in. The rules are composefs-rs'
// (crates/composefs/src/repository.rs): a higher version or an unknown
// incompatible feature refuses the repository, an unknown
// read-only-compatible feature allows reading only, unknown compatible
// features are ignored.
package repometa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cfsboot/verity"
)

// FileName is the metadata file at the repository root.
const FileName = "meta.json"

// Version is the repository format version this package understands.
const Version = 1

// FeatureV1EROFS is the read-only-compatible flag composefs-rs sets when
// the default image format is V1, so that tools predating erofs_formats
// do not write V2 images into the repository.
const FeatureV1EROFS = "v1_erofs"

// Feature flags understood here, per tier.
var (
	knownCompatible         []string
	knownReadOnlyCompatible = []string{FeatureV1EROFS}
	knownIncompatible       []string
)

// EROFS image format versions as meta.json numbers them (gen/erofs's
// FormatV0..FormatV2 have the same numbers).
const (
	FormatV0 = 0
	FormatV1 = 1
	FormatV2 = 2
)

var (
	// ErrUnsupportedVersion: the repository's format version is newer
	// than this package understands.
	ErrUnsupportedVersion = errors.New("unsupported repository format version")
	// ErrIncompatibleFeatures: the repository needs features this package
	// does not know.
	ErrIncompatibleFeatures = errors.New("repository requires unknown incompatible features")
)

// Features are the three tiers of feature flags.
type Features struct {
	Compatible         []string
	ReadOnlyCompatible []string
	Incompatible       []string
}

// Formats is erofs_formats: the format every commit is written in
// (Default, which gets the named ref) and the others written beside it.
type Formats struct {
	Default int
	Extra   []int // sorted, unique, never holding Default
}

// All returns the formats to write, Default first.
func (f Formats) All() []int {
	out := []int{f.Default}
	for _, v := range f.Extra {
		if v != f.Default {
			out = append(out, v)
		}
	}
	return out
}

// Meta is the content of meta.json.
type Meta struct {
	Version   uint32
	Algorithm verity.Algorithm
	Features  Features
	// Formats as stored; nil when meta.json predates erofs_formats (see
	// EROFSFormats for the effective value).
	Formats *Formats
}

// New returns the metadata composefs-rs writes for a new repository:
// v1_erofs is set when the default format is V1.
func New(alg verity.Algorithm, formats Formats) (*Meta, error) {
	if !alg.Valid() {
		return nil, fmt.Errorf("repository metadata: unknown fs-verity algorithm %d", uint8(alg))
	}
	if err := formats.normalize(); err != nil {
		return nil, fmt.Errorf("repository metadata: %w", err)
	}
	m := &Meta{Version: Version, Algorithm: alg, Formats: &formats}
	if formats.Default == FormatV1 {
		m.Features.ReadOnlyCompatible = []string{FeatureV1EROFS}
	}
	return m, nil
}

// EROFSFormats returns the effective formats. As in composefs-rs, a stored
// erofs_formats other than the legacy default {"default": 2} is taken as
// is; otherwise the v1_erofs flag means V1 and its absence V2 (repositories
// created before erofs_formats existed).
func (m *Meta) EROFSFormats() Formats {
	legacy := Formats{Default: FormatV2}
	switch {
	case m.Formats != nil && !(m.Formats.Default == FormatV2 && len(m.Formats.Extra) == 0):
		return *m.Formats
	case slices.Contains(m.Features.ReadOnlyCompatible, FeatureV1EROFS):
		return Formats{Default: FormatV1}
	}
	return legacy
}

// ReadOnly reports whether the repository may only be read, and the
// unknown read-only-compatible features that make it so.
func (m *Meta) ReadOnly() (bool, []string) {
	unknown := unknownFeatures(m.Features.ReadOnlyCompatible, knownReadOnlyCompatible)
	return len(unknown) > 0, unknown
}

func unknownFeatures(have, known []string) []string {
	var unknown []string
	for _, f := range have {
		if !slices.Contains(known, f) {
			unknown = append(unknown, f)
		}
	}
	return unknown
}

// Parse reads meta.json's content and refuses a repository this package
// must not open: a higher format version or unknown incompatible
// features. Unknown members are ignored, as composefs-rs does.
func Parse(data []byte) (*Meta, error) {
	var top map[string]json.RawMessage
	if err := strictUnmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	m := &Meta{}
	raw, ok := top["version"]
	if !ok {
		return nil, fmt.Errorf("%s: no \"version\"", FileName)
	}
	if err := strictUnmarshal(raw, &m.Version); err != nil {
		return nil, fmt.Errorf("%s: version: %w", FileName, err)
	}
	if m.Version > Version {
		return nil, fmt.Errorf("%s: %w %d (this tool supports up to %d)", FileName, ErrUnsupportedVersion, m.Version, Version)
	}
	raw, ok = top["algorithm"]
	if !ok {
		return nil, fmt.Errorf("%s: no \"algorithm\"", FileName)
	}
	var alg string
	if err := strictUnmarshal(raw, &alg); err != nil {
		return nil, fmt.Errorf("%s: algorithm: %w", FileName, err)
	}
	var err error
	if m.Algorithm, err = ParseAlgorithm(alg); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	if raw, ok := top["features"]; ok {
		if m.Features, err = parseFeatures(raw); err != nil {
			return nil, fmt.Errorf("%s: features: %w", FileName, err)
		}
	}
	if raw, ok := top["erofs_formats"]; ok {
		f, err := parseFormats(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: erofs_formats: %w", FileName, err)
		}
		m.Formats = &f
	}
	if unknown := unknownFeatures(m.Features.Incompatible, knownIncompatible); len(unknown) > 0 {
		return nil, fmt.Errorf("%s: %w: %s", FileName, ErrIncompatibleFeatures, strings.Join(unknown, ", "))
	}
	return m, nil
}

// ParseAlgorithm parses "fsverity-<hash>-<log2 block size>"
// ("fsverity-sha512-12").
func ParseAlgorithm(s string) (verity.Algorithm, error) {
	spec, ok := strings.CutPrefix(s, "fsverity-")
	if !ok {
		return 0, fmt.Errorf("algorithm %q: want fsverity-<hash>-<log2 block size>, like fsverity-sha512-12", s)
	}
	alg, err := verity.ParseSpec(spec)
	if err != nil {
		return 0, fmt.Errorf("algorithm %q: %w", s, err)
	}
	return alg, nil
}

// AlgorithmName is the meta.json name of alg ("fsverity-sha512-12").
func AlgorithmName(alg verity.Algorithm) string { return "fsverity-" + alg.Spec() }

func parseFeatures(raw json.RawMessage) (Features, error) {
	var obj map[string]json.RawMessage
	var f Features
	if err := strictUnmarshal(raw, &obj); err != nil {
		return f, err
	}
	for key, dst := range map[string]*[]string{
		"compatible":           &f.Compatible,
		"read-only-compatible": &f.ReadOnlyCompatible,
		"incompatible":         &f.Incompatible,
	} {
		if v, ok := obj[key]; ok {
			if err := strictUnmarshal(v, dst); err != nil {
				return f, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	return f, nil
}

func parseFormats(raw json.RawMessage) (Formats, error) {
	var obj map[string]json.RawMessage
	var f Formats
	if err := strictUnmarshal(raw, &obj); err != nil {
		return f, err
	}
	def, ok := obj["default"]
	if !ok {
		return f, errors.New("no \"default\"")
	}
	if err := strictUnmarshal(def, &f.Default); err != nil {
		return f, fmt.Errorf("default: %w", err)
	}
	if extra, ok := obj["extra"]; ok {
		if err := strictUnmarshal(extra, &f.Extra); err != nil {
			return f, fmt.Errorf("extra: %w", err)
		}
	}
	return f, f.normalize()
}

// normalize checks the versions and makes Extra sorted and unique without
// Default, as composefs-rs' set does.
func (f *Formats) normalize() error {
	for _, v := range append([]int{f.Default}, f.Extra...) {
		if v < FormatV0 || v > FormatV2 {
			return fmt.Errorf("EROFS format version %d: want 0, 1 or 2", v)
		}
	}
	slices.Sort(f.Extra)
	f.Extra = slices.Compact(f.Extra)
	f.Extra = slices.DeleteFunc(f.Extra, func(v int) bool { return v == f.Default })
	if len(f.Extra) == 0 {
		f.Extra = nil
	}
	return nil
}

// strictUnmarshal decodes one JSON value; unlike a plain json.Unmarshal
// into a struct it matches nothing case-insensitively (callers decode
// objects into maps and pick exact keys) and rejects JSON null, which
// composefs-rs rejects for these members too.
func strictUnmarshal(data []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return errors.New("null where a value is required")
	}
	return json.Unmarshal(data, v)
}

// Marshal returns meta.json's content as composefs-rs writes it (two-space
// indented, members in its order, a trailing newline).
func (m *Meta) Marshal() ([]byte, error) {
	type features struct {
		Compatible         []string `json:"compatible"`
		ReadOnlyCompatible []string `json:"read-only-compatible"`
		Incompatible       []string `json:"incompatible"`
	}
	type formats struct {
		Default int   `json:"default"`
		Extra   []int `json:"extra,omitempty"`
	}
	out := struct {
		Version   uint32   `json:"version"`
		Algorithm string   `json:"algorithm"`
		Features  features `json:"features"`
		Formats   *formats `json:"erofs_formats,omitempty"`
	}{
		Version:   m.Version,
		Algorithm: AlgorithmName(m.Algorithm),
		Features: features{
			Compatible:         nonNil(m.Features.Compatible),
			ReadOnlyCompatible: nonNil(m.Features.ReadOnlyCompatible),
			Incompatible:       nonNil(m.Features.Incompatible),
		},
	}
	if m.Formats != nil {
		out.Formats = &formats{Default: m.Formats.Default, Extra: m.Formats.Extra}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
