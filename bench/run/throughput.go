package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// kernelDeb is the VM kernel the QEMU tests boot (make deps fetches it).
func kernelDeb() (string, error) {
	debs, _ := filepath.Glob(".cache/debian/debs/linux-image-*.deb")
	if len(debs) != 1 {
		return "", fmt.Errorf("want one kernel .deb in .cache/debian/debs (make deps), found %d", len(debs))
	}
	return debs[0], nil
}

// toolsRoot builds (once) a Debian root of kind with bench/tools-root.sh.
func toolsRoot(kind string) (string, error) {
	args := []string{*cache, kind}
	if kind != "composefs" {
		deb, err := kernelDeb()
		if err != nil {
			return "", err
		}
		args = append(args, deb)
	}
	cmd := exec.Command("bench/tools-root.sh", args...)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("bench/tools-root.sh %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// chroot runs tools of a Debian root on host directories bind-mounted
// under its /mnt.
type chroot struct {
	root   string
	mounts []string
}

// bind makes host dir visible in the root and returns its path there.
// The first bind also mounts /proc (mkcomposefs reads xattrs through
// /proc/self/fd).
func (c *chroot) bind(dir string) (string, error) {
	if len(c.mounts) == 0 {
		proc := filepath.Join(c.root, "proc")
		if err := sh("mount", "-t", "proc", "proc", proc); err != nil {
			return "", err
		}
		mounted(proc)
		c.mounts = append(c.mounts, proc)
	}
	inside := "/mnt/" + filepath.Base(dir)
	target := filepath.Join(c.root, inside)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if err := sh("mount", "--bind", dir, target); err != nil {
		return "", err
	}
	mounted(target)
	c.mounts = append(c.mounts, target)
	return inside, nil
}

func (c *chroot) argv(tool ...string) []string { return append([]string{"chroot", c.root}, tool...) }

func (c *chroot) close() {
	for i := len(c.mounts) - 1; i >= 0; i-- {
		unmount(c.mounts[i])
	}
	c.mounts = nil
}

// throughput compares digest-only image creation and store fill on the
// 1 GiB tree with openssl on one core (the limit) and mkcomposefs.
func throughput(cfsboot string, mk *chroot) error {
	dir, err := tree(0)
	if err != nil {
		return err
	}
	bytes, err := treeBytes(dir)
	if err != nil {
		return err
	}
	openssl := func(alg string) []string {
		return []string{"sh", "-c", fmt.Sprintf("find %s -type f -print0 | xargs -0 openssl dgst -%s >/dev/null", dir, alg)}
	}
	store := filepath.Join(*cache, "store")
	ociDir, err := ociLayout(dir)
	if err != nil {
		return err
	}
	ostore := filepath.Join(*cache, "ostore")
	copyDir := filepath.Join(*cache, "copy")
	cmds := []Cmd{
		{Name: "openssl256", Argv: openssl("sha256")},
		{Name: "create", Argv: []string{cfsboot, "-q", "image", "create", dir}},
		{Name: "store", Argv: []string{cfsboot, "-q", "image", "create", dir, "--store", store}, Before: emptyDir(store)},
		{Name: "openssl512", Argv: openssl("sha512")},
		{Name: "create512", Argv: []string{cfsboot, "-q", "image", "create", "--hash", "sha512", dir}},
		{Name: "cp", Argv: durableCopy(dir, copyDir, ""), Before: emptyDir(copyDir)},
		{Name: "import", Argv: []string{cfsboot, "-q", "oci", "import", "oci:" + ociDir}},
		{Name: "importstore", Argv: []string{cfsboot, "-q", "oci", "import", "oci:" + ociDir, "--store", ostore}, Before: emptyDir(ostore)},
	}
	if mk != nil {
		inside, err := mk.bind(dir)
		if err != nil {
			return err
		}
		defer mk.close()
		mstore := filepath.Join(mk.root, "mnt", "mstore")
		cmds = append(cmds,
			Cmd{Name: "mkcomposefs", Argv: mk.argv("mkcomposefs", "--print-digest-only", inside)},
			Cmd{Name: "mkstore", Argv: mk.argv("mkcomposefs", "--digest-store=/mnt/mstore", inside, "/mnt/m.img"), Before: emptyDir(mstore)})
	}
	xfs, err := xfsTree(dir)
	if err != nil {
		return err
	}
	if xfs != nil {
		defer xfs.close()
		cmds = append(cmds,
			Cmd{Name: "xfscreate", Argv: []string{cfsboot, "-q", "image", "create", xfs.tree}},
			Cmd{Name: "xfsstore", Argv: []string{cfsboot, "-q", "image", "create", xfs.tree, "--store", xfs.store}, Before: emptyDir(xfs.store)},
			Cmd{Name: "xfscp", Argv: durableCopy(xfs.tree, xfs.store, "--reflink=always"), Before: emptyDir(xfs.store)})
	}
	got, err := measure(cmds)
	if err != nil {
		return err
	}
	g := fmt.Sprintf("throughput: %d MB", bytes/1000000)
	add := func(name, what, limit string, alts ...string) {
		ss, ok := got[name]
		if !ok {
			return
		}
		r := row(g, what, ss)
		r.MBps = float64(bytes) / 1e6 / r.Seconds
		if l, ok := got[limit]; ok && limit != name {
			r.VsLimit = fmt.Sprintf("%.2fx / %.2fx", r.Seconds/median(l, wall), r.CPUSeconds/median(l, cpu))
		}
		r.Vs = map[string]float64{}
		for _, a := range alts {
			if as, ok := got[a]; ok {
				r.Vs[alias[a]] = r.Seconds / median(as, wall)
			}
		}
		results.Rows = append(results.Rows, r)
	}
	add("openssl256", "openssl dgst -sha256, one core (the SHA-256 limit)", "")
	add("create", "cfsboot image create (digest only)", "openssl256", "mkcomposefs")
	add("mkcomposefs", "mkcomposefs --print-digest-only (2 threads)", "openssl256")
	add("cp", "cp -a, then sync -f: a durable copy of the tree (no hashing)", "create")
	add("store", "cfsboot image create --store", "create", "mkstore", "cp")
	add("import", "cfsboot oci import of the same tree as one layer (digest only)", "create")
	add("importstore", "cfsboot oci import --store", "store")
	add("mkstore", "mkcomposefs --digest-store", "mkcomposefs")
	add("xfscreate", "XFS loop file: cfsboot image create (digest only)", "openssl256")
	add("xfscp", "XFS loop file: cp -a --reflink=always, then sync -f", "xfscreate")
	add("xfsstore", "XFS loop file: cfsboot image create --store (reflinks)", "xfscreate", "xfscp")
	add("openssl512", "openssl dgst -sha512, one core (the SHA-512 limit)", "")
	add("create512", "cfsboot image create --hash sha512 (digest only)", "openssl512")
	return nil
}

// ociLayout writes (once) an OCI image layout whose one uncompressed layer
// is the tree, for the import rows.
func ociLayout(dir string) (string, error) {
	out := filepath.Join(*cache, "layout")
	if _, err := os.Stat(filepath.Join(out, "index.json")); err == nil {
		return out, nil
	}
	tarFile := filepath.Join(*cache, "tree.tar")
	if err := sh("tar", "--numeric-owner", "-C", dir, "-cf", tarFile, "."); err != nil {
		return "", err
	}
	defer os.Remove(tarFile)
	layer, err := tarball.LayerFromFile(tarFile)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	os.RemoveAll(out)
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return "", err
	}
	return out, p.AppendImage(img)
}

// durableCopy is the command that copies dir's content into the empty
// directory to with cp (flag: e.g. --reflink=always) and syncs to's
// filesystem: what any durable copy of the tree costs, without hashing.
func durableCopy(dir, to, flag string) []string {
	return []string{"sh", "-c", fmt.Sprintf("cp -a %s %s/. %s && sync -f %s", flag, dir, to, to)}
}

// alias names the alternatives in the vs column.
var alias = map[string]string{"mkcomposefs": "mkcomposefs", "mkstore": "mkcomposefs --digest-store",
	"mkdump": "composefs-info dump", "mkimage": "mkcomposefs", "cp": "cp -a + sync", "xfscp": "cp --reflink + sync"}

// loopFS is a filesystem in a loop file holding a copy of the tree.
type loopFS struct{ mnt, tree, store string }

// xfsTree mounts (made once) an XFS filesystem with reflinks in a loop
// file under the cache, with a copy of dir, so that the store fill can
// clone objects instead of copying them; nil without mkfs.xfs.
func xfsTree(dir string) (*loopFS, error) {
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		return nil, nil
	}
	img := filepath.Join(*cache, "xfs.img")
	if _, err := os.Stat(img); err != nil {
		if err := sh("truncate", "-s", "4G", img+".tmp"); err != nil {
			return nil, err
		}
		if err := sh("mkfs.xfs", "-q", "-m", "reflink=1", img+".tmp"); err != nil {
			return nil, err
		}
		if err := os.Rename(img+".tmp", img); err != nil {
			return nil, err
		}
	}
	l := &loopFS{mnt: filepath.Join(*cache, "xfs")}
	l.tree, l.store = filepath.Join(l.mnt, "tree"), filepath.Join(l.mnt, "store")
	if err := os.MkdirAll(l.mnt, 0o755); err != nil {
		return nil, err
	}
	if err := sh("mount", "-o", "loop", img, l.mnt); err != nil {
		return nil, err
	}
	mounted(l.mnt)
	if _, err := os.Stat(l.tree + ".done"); err != nil {
		os.RemoveAll(l.tree)
		if err := sh("cp", "-a", dir, l.tree); err != nil {
			l.close()
			return nil, err
		}
		if err := os.WriteFile(l.tree+".done", nil, 0o644); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *loopFS) close() { unmount(l.mnt) }
