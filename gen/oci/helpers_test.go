package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// memorySink keeps every object in memory, keyed by digest: the test sink.
type memorySink struct {
	mu      sync.Mutex
	objects map[verity.Digest][]byte
}

func (s *memorySink) Put(r io.Reader) (verity.Sum, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return verity.Sum{}, err
	}
	d := verity.ComputeBytes(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects == nil {
		s.objects = map[verity.Digest][]byte{}
	}
	s.objects[d] = data
	return d.Sum(), nil
}

// PutsInParallel: the map is behind the mutex.
func (s *memorySink) PutsInParallel() {}

// ent is one hand-made tar entry.
type ent struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	body       string
	size       int64 // when body is empty and size > 0: that many zero bytes
	xattrs     map[string]string
	major      int64
	minor      int64
	mtime      int64
}

var testTime = time.Unix(1700000000, 123000000)

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent { return ent{name: name, typ: tar.TypeLink, link: target} }
func whiteout(name string) ent         { return ent{name: name, typ: tar.TypeReg, mode: 0o644} }

// tarOf writes entries as a PAX tar stream.
func tarOf(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		mtime := testTime
		if e.mtime != 0 {
			mtime = time.Unix(e.mtime, 0)
		}
		h := &tar.Header{
			Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX,
			Devmajor: e.major, Devminor: e.minor,
		}
		body := []byte(e.body)
		if len(body) == 0 && e.size > 0 {
			body = make([]byte, e.size)
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[paxXattrPrefix+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gzipLayer makes a gzip-compressed layer of a tar stream.
func gzipLayer(t testing.TB, tarData []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf stacks layers into an image.
func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	base = mutate.ConfigMediaType(mutate.MediaType(base, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageOfTars makes an image of gzip layers, one per tar.
func imageOfTars(t testing.TB, tars ...[]byte) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, tr := range tars {
		layers = append(layers, gzipLayer(t, tr))
	}
	return imageOf(t, layers...)
}

func uncompressedLayer(data []byte) v1.Layer {
	return static.NewLayer(data, types.OCIUncompressedLayer)
}

// listing describes a tree one line per entry: path, type and permission
// bits, owner, link count, and a type-specific detail.
func listing(root *tree.Node) string {
	var lines []string
	root.Walk(func(n *tree.Node) error {
		if n.LinkTo != nil {
			lines = append(lines, fmt.Sprintf("%s => %s", n.Path(), n.LinkTo.Path()))
			return nil
		}
		line := fmt.Sprintf("%s %o %d:%d", n.Path(), n.Mode, n.UID, n.GID)
		switch n.Mode & tree.SIFMT {
		case tree.SIFREG:
			line += fmt.Sprintf(" n%d %q", n.Nlink, content(n))
		case tree.SIFLNK:
			line += " -> " + n.Payload
		case tree.SIFCHR, tree.SIFBLK:
			line += fmt.Sprintf(" rdev %#x", n.Rdev)
		}
		for _, x := range n.Xattrs {
			line += fmt.Sprintf(" %s=%s", x.Key, x.Value)
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// content shows inline content, or the size of external content.
func content(n *tree.Node) string {
	if n.Content != nil || n.Size == 0 {
		return string(n.Content)
	}
	return fmt.Sprintf("<%d bytes>", n.Size)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
