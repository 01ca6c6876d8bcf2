// Package conformance loads the reference composefs conformance vectors
// (containers/composefs tests/assets, kept in ../shared/composefs-tests):
// dumps, the SHA-256 of the image mkcomposefs wrote for each, the format
// version some demand, and the dumps that must be rejected.
package conformance

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Vector is one conformance case.
type Vector struct {
	Name       string
	Dump       []byte // decompressed
	ShouldFail bool
	// Lenient: the reference parses this dump without CFS_PARSE_STRICT.
	Lenient bool
	SHA256  string // of the image; "" for should-fail vectors
	Version int    // required format version, or -1 for the defaults
}

// ForTest loads the vectors from ../shared/composefs-tests beside the
// repository. Where they are missing the test is skipped, except under
// CI=true, where it fails: a CI run must not pass by not running them.
func ForTest(tb testing.TB) []Vector {
	tb.Helper()
	dir, err := sharedDir()
	if err != nil {
		tb.Fatal(err)
	}
	return forTest(tb, dir)
}

func forTest(tb testing.TB, dir string) []Vector {
	tb.Helper()
	vs, err := Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(vs) == 0 {
		missing := "no conformance vectors in " + dir + " (the shared/ directory must sit beside the repository)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(missing + "; CI=true requires them")
		}
		tb.Skip(missing)
	}
	return vs
}

// sharedDir finds the repository (the directory with go.mod, at or above
// the test's working directory) and names composefs-tests beside it.
func sharedDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "composefs-tests"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("conformance vectors: no go.mod above the working directory")
		}
		dir = parent
	}
}

var lenient = map[string]bool{"no-newline.dump": true, "longlink.dump": true, "honggfuzz-longlink-unterminated.dump": true}

// Load reads every vector in dir.
func Load(dir string) ([]Vector, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.dump*"))
	if err != nil {
		return nil, err
	}
	var out []Vector
	for _, p := range paths {
		name := filepath.Base(p)
		if !strings.HasSuffix(name, ".dump") && !strings.HasSuffix(name, ".dump.gz") {
			continue
		}
		v := Vector{Name: name, ShouldFail: strings.HasPrefix(name, "should-fail-"), Lenient: lenient[strings.TrimSuffix(name, ".gz")], Version: -1}
		if v.Dump, err = readDump(p); err != nil {
			return nil, err
		}
		if !v.ShouldFail {
			sum, err := os.ReadFile(p + ".sha256")
			if err != nil {
				return nil, err
			}
			v.SHA256 = strings.Fields(string(sum))[0]
		}
		if ver, err := os.ReadFile(strings.TrimSuffix(p, ".gz") + ".version"); err == nil {
			if v.Version, err = strconv.Atoi(strings.TrimSpace(string(ver))); err != nil {
				return nil, fmt.Errorf("%s.version: %w", p, err)
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func readDump(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(path, ".gz") {
		return data, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(zr)
}
