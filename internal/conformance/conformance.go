// Package conformance loads the reference composefs conformance vectors
// (containers/composefs tests/assets, kept in ../shared/composefs-tests):
// dumps, the SHA-256 of the image mkcomposefs wrote for each, the format
// version some demand, and the dumps that must be rejected.
package conformance

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
