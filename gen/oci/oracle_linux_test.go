package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/tree"
	"cfsboot/mount"
)

// umociKeepsNoMtime lists, per oracle image, the top-level directories
// whose mtime Debian 12's umoci does not restore.
var umociKeepsNoMtime = map[string][]string{"late whiteouts": {"-d", "e"}}

// oracleImages are multi-layer images covering what layers can do.
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
	links := tarOf(t,
		file("usr/bin/tool2", big+"tool"),
		hardlink("usr/bin/tool2-alias", "usr/bin/tool2"),
		hardlink("etc/shadow-", "etc/shadow"),
		whiteout("etc/.wh.shadow"),
	)
	// Whiteouts after entries of the same name in their layer hide only the
	// lower layer's ("-" sorts before ".wh.").
	lateWhiteouts := [][]byte{
		tarOf(t, file("-a", "old"), dir("-d/"), file("-d/old", "o"), dir("e/"), file("e/old", "o")),
		tarOf(t, file("-a", "new"), whiteout(".wh.-a"), dir("-d/"), file("-d/new", "n"), whiteout(".wh.-d"),
			file("e/new", "n"), whiteout(".wh.e")),
	}
	return map[string]v1.Image{
		"late whiteouts":    imageOfTars(t, append([][]byte{base}, lateWhiteouts...)...),
		"hard links":        imageOfTars(t, base, links),
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
			sink := &memorySink{}
			res, err := Import(img, Options{Sink: sink})
			if err != nil {
				t.Fatal(err)
			}
			want, image, err := ImageDigest(res.Tree, erofs.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			layoutDir := writeLayout(t, img, "oracle")
			bundle := filepath.Join(t.TempDir(), "bundle")
			if out, err := exec.Command(umoci, "unpack", "--image", layoutDir+":oracle", bundle).CombinedOutput(); err != nil {
				t.Fatalf("umoci unpack: %v\n%s", err, out)
			}
			// umoci leaves the unpack time on a directory whose lower
			// entries a whiteout later in the layer removed; the layers
			// say otherwise.
			for _, p := range umociKeepsNoMtime[name] {
				n := res.Tree.Lookup(p)
				mtime := time.Unix(n.MtimeSec, int64(n.MtimeNsec))
				if err := os.Chtimes(filepath.Join(bundle, "rootfs", p), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			unpacked, err := source.Dir(filepath.Join(bundle, "rootfs"), source.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := ImageDigest(unpacked, erofs.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			// mkcomposefs (and gen/source) give every name of a directory
			// tree its own inode; the import keeps hard links as one.
			if want, _, err = ImageDigest(withoutHardLinks(res.Tree), erofs.DefaultOptions()); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("umoci's tree %s, import %s\n%s", got, want, dumpDiff(t, unpacked, res.Tree))
			}
			mounted := mountImport(t, image, sink)
			compareTrees(t, filepath.Join(bundle, "rootfs"), mounted)
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

// withoutHardLinks copies root with every hard link made a file of its own,
// link count 1, as a directory source reads it.
func withoutHardLinks(root *tree.Node) *tree.Node {
	var cp func(n, parent *tree.Node) *tree.Node
	cp = func(n, parent *tree.Node) *tree.Node {
		c := *n.Target()
		c.Name, c.Parent, c.LinkTo, c.Children = n.Name, parent, nil, nil
		if c.Mode&tree.SIFMT != tree.SIFDIR {
			c.Nlink = 1
		}
		for _, child := range n.Children {
			c.Children = append(c.Children, cp(child, &c))
		}
		return &c
	}
	return cp(root, nil)
}

// mountImport mounts an imported image through the kernel: EROFS, and
// overlayfs over the sink's objects (verity=off: the host kernel has no
// fs-verity).
func mountImport(t *testing.T, image []byte, sink *memorySink) string {
	t.Helper()
	dir := t.TempDir()
	objects := filepath.Join(dir, "objects")
	for d, data := range sink.objects {
		p := filepath.Join(objects, tree.ObjectPath(d))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imgPath := filepath.Join(dir, "image")
	if err := os.WriteFile(imgPath, image, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := os.Open(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	lower, root := filepath.Join(dir, "lower"), filepath.Join(dir, "root")
	for _, d := range []string{lower, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := mount.EROFS(int(img.Fd()), lower); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(lower, unix.MNT_DETACH) })
	ov := mount.Overlay{Lower: []string{lower}, Data: []string{objects}, Composefs: true, Verity: mount.VerityOff}
	if err := ov.Mount(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	return root
}

// compareTrees checks that two directory trees hold the same entries with
// the same type, mode, owner, mtime, device, content, link target and
// user.* xattrs.
func compareTrees(t *testing.T, wantDir, gotDir string) {
	t.Helper()
	want, got := describeTree(t, wantDir), describeTree(t, gotDir)
	if len(want) < 10 {
		t.Fatalf("umoci's tree has %d entries", len(want))
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: missing in the mounted import", name)
		} else if g != w {
			t.Errorf("%s: mounted import %s\numoci           %s", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in the mounted import, not in umoci's tree", name)
		}
	}
}

func describeTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o owner %d:%d mtime %d.%09d rdev %#x", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, st.Rdev)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" content %x", sha256.Sum256(data))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		var attrs []string
		buf := make([]byte, 64<<10)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			for _, k := range strings.Split(string(buf[:n]), "\x00") {
				if strings.HasPrefix(k, "user.") {
					vn, err := unix.Lgetxattr(p, k, buf[n:])
					if err != nil {
						return fmt.Errorf("%s: xattr %s: %w", p, k, err)
					}
					attrs = append(attrs, k+"="+string(buf[n:n+vn]))
				}
			}
		}
		sort.Strings(attrs)
		rel, _ := filepath.Rel(root, p)
		out[rel] = desc + " xattrs " + strings.Join(attrs, ",")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// skopeo, an independent converter, turns a layout into the other source
// kinds (and pushes it to a registry); every one imports to the same
// digest.
func TestSkopeoConversions(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed (Debian package skopeo, in the Makefile's APT_PACKAGES)")
	}
	img := oracleImages(t)["three layers gzip"]
	want := digestOf(t, img, Options{})
	layoutDir := writeLayout(t, img, "oracle")
	tmp := t.TempDir()
	host := serveRegistry(t)
	for _, tc := range []struct{ dest, src string }{
		{"oci-archive:" + tmp + "/oci.tar:oracle", "oci-archive:" + tmp + "/oci.tar:oracle"},
		{"docker-archive:" + tmp + "/docker.tar:example.org/oracle:v1", "docker-archive:" + tmp + "/docker.tar"},
		{"oci:" + tmp + "/layout2:copied", "oci:" + tmp + "/layout2:copied"},
		{"docker://" + host + "/oracle:v1", "docker://" + host + "/oracle:v1"},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			cmd := exec.Command(skopeo, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layoutDir+":oracle", tc.dest)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy: %v\n%s", err, out)
			}
			opened, closeFn, err := Open(tc.src, SourceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if got := digestOf(t, opened, Options{}); got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		})
	}
}
