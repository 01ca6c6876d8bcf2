package repometa

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"cfsboot/verity"
)

// What composefs-rs' RepoMetadata::to_json (serde_json pretty) writes for a
// new SHA-512 repository with the default format V1.
const rsDefaultSHA512 = `{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}
`

func TestNewMarshalsLikeComposefsRs(t *testing.T) {
	m, err := New(verity.SHA512, Formats{Default: FormatV1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil || string(b) != rsDefaultSHA512 {
		t.Fatalf("got %v\n%s\nwant\n%s", err, b, rsDefaultSHA512)
	}
	m, _ = New(verity.SHA256, Formats{Default: FormatV1, Extra: []int{2, 1, 2}})
	b, _ = m.Marshal()
	if !strings.Contains(string(b), `"extra": [
      2
    ]`) || !strings.Contains(string(b), `"fsverity-sha256-12"`) {
		t.Errorf("dual-format repository:\n%s", b)
	}
	m, _ = New(verity.SHA256, Formats{Default: FormatV2})
	if ro := m.Features.ReadOnlyCompatible; len(ro) != 0 {
		t.Errorf("V2 repository has ro-compat features %q", ro)
	}
	if _, err := New(verity.SHA256, Formats{Default: 3}); err == nil {
		t.Error("format 3 accepted")
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, json string
		alg        verity.Algorithm
		formats    []int
		readOnly   []string
	}{
		{"composefs-rs default", rsDefaultSHA512, verity.SHA512, []int{1}, nil},
		// Repositories from before erofs_formats: the flag decides.
		{"legacy v2", `{"version":1,"algorithm":"fsverity-sha256-12","features":{}}`, verity.SHA256, []int{2}, nil},
		{"legacy v1", `{"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs"]}}`, verity.SHA256, []int{1}, nil},
		{"old erofs_version member ignored", `{"version":1,"algorithm":"fsverity-sha256-12","features":{},"erofs_version":2}`, verity.SHA256, []int{2}, nil},
		{"no features", `{"version":1,"algorithm":"fsverity-sha512-12"}`, verity.SHA512, []int{2}, nil},
		{"dual", `{"version":1,"algorithm":"fsverity-sha512-12","erofs_formats":{"default":1,"extra":[2,2,1]}}`, verity.SHA512, []int{1, 2}, nil},
		{"v0", `{"version":1,"algorithm":"fsverity-sha512-12","erofs_formats":{"default":0}}`, verity.SHA512, []int{0}, nil},
		// An explicit {"default":2} reads like its absence (composefs-rs' rule).
		{"explicit v2 with flag", `{"version":1,"algorithm":"fsverity-sha512-12","features":{"read-only-compatible":["v1_erofs"]},"erofs_formats":{"default":2}}`, verity.SHA512, []int{1}, nil},
		{"version 0", `{"version":0,"algorithm":"fsverity-sha256-12"}`, verity.SHA256, []int{2}, nil},
		{"unknown compatible ignored", `{"version":1,"algorithm":"fsverity-sha256-12","features":{"compatible":["future"]}}`, verity.SHA256, []int{2}, nil},
		{"unknown ro-compat: read only", `{"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs","future","other"]}}`, verity.SHA256, []int{1}, []string{"future", "other"}},
		{"case-sensitive members", `{"version":1,"Version":9,"algorithm":"fsverity-sha256-12","Features":{"incompatible":["x"]}}`, verity.SHA256, []int{2}, nil},
	} {
		m, err := Parse([]byte(c.json))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		ro, unknown := m.ReadOnly()
		if m.Algorithm != c.alg || !reflect.DeepEqual(m.EROFSFormats().All(), c.formats) || ro != (len(c.readOnly) > 0) || !reflect.DeepEqual(unknown, c.readOnly) {
			t.Errorf("%s: algorithm %s, formats %v, read-only %v %q; want %s %v %q", c.name, m.Algorithm, m.EROFSFormats().All(), ro, unknown, c.alg, c.formats, c.readOnly)
		}
		// What we write reads back the same.
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil || !reflect.DeepEqual(again.EROFSFormats(), m.EROFSFormats()) || again.Algorithm != m.Algorithm {
			t.Errorf("%s: rewritten %s reads as %+v, %v", c.name, b, again, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		json string
		is   error
	}{
		"higher version":       {`{"version":2,"algorithm":"fsverity-sha256-12"}`, ErrUnsupportedVersion},
		"unknown incompatible": {`{"version":1,"algorithm":"fsverity-sha256-12","features":{"incompatible":["future"]}}`, ErrIncompatibleFeatures},
		"no version":           {`{"algorithm":"fsverity-sha256-12"}`, nil},
		"no algorithm":         {`{"version":1}`, nil},
		"bad algorithm":        {`{"version":1,"algorithm":"sha256"}`, nil},
		"block size":           {`{"version":1,"algorithm":"fsverity-sha256-16"}`, nil},
		"unknown hash":         {`{"version":1,"algorithm":"fsverity-blake3-12"}`, nil},
		"negative version":     {`{"version":-1,"algorithm":"fsverity-sha256-12"}`, nil},
		"float version":        {`{"version":1.0,"algorithm":"fsverity-sha256-12"}`, nil},
		"string version":       {`{"version":"1","algorithm":"fsverity-sha256-12"}`, nil},
		"null features":        {`{"version":1,"algorithm":"fsverity-sha256-12","features":null}`, nil},
		"null list":            {`{"version":1,"algorithm":"fsverity-sha256-12","features":{"compatible":null}}`, nil},
		"feature not a string": {`{"version":1,"algorithm":"fsverity-sha256-12","features":{"compatible":[1]}}`, nil},
		"format 3":             {`{"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":3}}`, nil},
		"extra format 3":       {`{"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":1,"extra":[3]}}`, nil},
		"no default":           {`{"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"extra":[1]}}`, nil},
		"not an object":        {`[1]`, nil},
		"trailing data":        {`{"version":1,"algorithm":"fsverity-sha256-12"} x`, nil},
		"empty":                {``, nil},
	} {
		_, err := Parse([]byte(c.json))
		if err == nil || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want an error (%v)", name, err, c.is)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(rsDefaultSHA512))
	f.Add([]byte(`{"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs","x"],"incompatible":[]},"erofs_formats":{"default":1,"extra":[2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("our own output %s: %v", b, err)
		}
		if again.Algorithm != m.Algorithm || again.Version != m.Version || !reflect.DeepEqual(again.EROFSFormats(), m.EROFSFormats()) {
			t.Fatalf("%s -> %+v -> %s -> %+v", data, m, b, again)
		}
	})
}
