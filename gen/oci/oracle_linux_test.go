package oci

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/tree"
)

// oracleImages are multi-layer images covering what layers can do. They
// carry no hard links: mkcomposefs (and source.Dir) give every inode of a
// directory its own entry, so a hard-linked tree read back from disk is a
// different image by design.
func oracleImages(t *testing.T) map[string]v1.Image {
	big := strings.Repeat("0123456789abcdef", 1000)
	base := tarOf(t,
		ent{name: "./", typ: tar.TypeDir, mode: 0o755, mtime: 1500000000},
		dir("etc/"), file("etc/hostname", "oracle\n"), file("etc/os-release", big),
		ent{name: "etc/shadow", typ: tar.TypeReg, mode: 0o640, uid: 0, gid: 42, body: "root:*:1::::::\n"},
		dir("usr/"), dir("usr/bin/"),
		ent{name: "usr/bin/su", typ: tar.TypeReg, mode: 0o4755, body: big + "su"},
		ent{name: "usr/bin/ping", typ: tar.TypeReg, mode: 0o755, body: big + "ping",
			xattrs: map[string]string{"user.note": "pinger", "user.empty": ""}},
		symlink("bin", "usr/bin"), symlink("usr/bin/sh", "/usr/bin/su"),
		dir("dev/"),
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		ent{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 8, minor: 0},
		ent{name: "dev/initctl", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "home/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		ent{name: "home/user/.profile", typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, body: "export A=1\n"},
		dir("opt/"), dir("opt/old/"), file("opt/old/a", "a"), file("opt/b", big),
		dir("var/"), dir("var/cache/"), file("var/cache/c", "c"),
		file("swap", "file first"), dir("flip/"), file("flip/inner", "dir first"),
		file("empty", ""),
	)
	update := tarOf(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: 1600000000},
		whiteout("etc/.wh.hostname"),
		ent{name: "etc/motd", typ: tar.TypeReg, mode: 0o644, mtime: 1600000001, body: "hello\n"},
		ent{name: "opt/", typ: tar.TypeDir, mode: 0o755, mtime: 1600000002},
		whiteout("opt/.wh..wh..opq"), file("opt/new", "n"),
		whiteout(".wh.swap"), dir("swap/"), file("swap/now", "a dir"),
		whiteout(".wh.flip"), file("flip", "a file"),
		ent{name: "var/", typ: tar.TypeDir, mode: 0o755, mtime: 1600000003},
		whiteout("var/.wh.cache"),
		ent{name: "usr/bin/ping", typ: tar.TypeReg, mode: 0o755, body: big + "ping v2",
			xattrs: map[string]string{"user.note": "pinger 2"}},
	)
	third := tarOf(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o700, mtime: 1700000000},
		file("etc/hostname", "back\n"),
		ent{name: "home/user/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000, mtime: 1700000001},
	)
	rnd, err := random.Image(5000, 3)
	if err != nil {
		t.Fatal(err)
	}
	rndLayers, err := rnd.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// umoci wants OCI media types: the random layers' tars go in as OCI
	// gzip layers.
	tars := [][]byte{base}
	for _, l := range rndLayers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		tars = append(tars, data)
	}
	return map[string]v1.Image{
		"three layers gzip": imageOfTars(t, base, update, third),
		// Debian 12's umoci reads no zstd layers.
		"gzip and plain": imageOf(t, gzipLayer(t, base), uncompressedLayer(update), gzipLayer(t, third)),
		"random layers":  imageOfTars(t, tars...),
	}
}

// The tree umoci unpacks, read back as a directory, is the tree the import
// makes: the same composefs digest.
func TestUmociOracle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("umoci unpack needs root to keep owners and make device nodes")
	}
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci not installed (Debian package umoci, in the Makefile's APT_PACKAGES)")
	}
	for name, img := range oracleImages(t) {
		t.Run(name, func(t *testing.T) {
			res, err := Import(img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := ImageDigest(res.Tree, erofs.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			layoutDir := writeLayout(t, img, "oracle")
			bundle := filepath.Join(t.TempDir(), "bundle")
			if out, err := exec.Command(umoci, "unpack", "--image", layoutDir+":oracle", bundle).CombinedOutput(); err != nil {
				t.Fatalf("umoci unpack: %v\n%s", err, out)
			}
			unpacked, err := source.Dir(filepath.Join(bundle, "rootfs"), source.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := ImageDigest(unpacked, erofs.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("umoci's tree %s, import %s\n%s", got, want, dumpDiff(t, unpacked, res.Tree))
			}
		})
	}
}

// dumpDiff lists the composefs-dump lines of a and b that differ.
func dumpDiff(t *testing.T, a, b *tree.Node) string {
	lines := func(n *tree.Node) map[string]bool {
		var buf bytes.Buffer
		if err := dump.Write(&buf, n); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, l := range strings.Split(buf.String(), "\n") {
			m[l] = true
		}
		return m
	}
	la, lb := lines(a), lines(b)
	var out []string
	for l := range la {
		if !lb[l] {
			out = append(out, "umoci:  "+l)
		}
	}
	for l := range lb {
		if !la[l] {
			out = append(out, "import: "+l)
		}
	}
	return strings.Join(out, "\n")
}
