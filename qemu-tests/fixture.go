//go:build qemu

package qemutests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/repometa"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/initramfs/build"
	"cfsboot/verity"
)

// Fixture is everything the scenarios share: the kernel, the initrds, the
// test root image and its provisioned disks. Built once per test run.
type Fixture struct {
	Dir           string
	Kernel        Kernel
	InitrdShell   string // cfsboot-init + modules + busybox
	InitrdNoShell string // cfsboot-init + modules
	Provision     string // provisioning initrd
	Digest        verity.Digest
	OtherDigest   verity.Digest // a second image in the same store (another /etc/os-release)
	// RepoDigest is the test tree's V1 image in a composefs-rs repository
	// (meta.json fsverity-sha512-12, images as symlinks), on the
	// "composefs-rs" disk.
	RepoDigest verity.Sum
	Files      map[string]string // path in the image -> sha256 hex
	BigObject  string            // store-relative path of /usr/share/cfsboot-test/big's object
	CfsbootBin string            // host cfsboot CLI

	once  sync.Map // disk name -> *diskOnce
	setup error
}

type diskOnce struct {
	sync.Once
	path string
	err  error
}

// Modules the VM kernel needs from the initrd (ext4, virtio_pci and the
// TPM drivers are built in).
var initrdModules = []string{"erofs", "overlay", "loop", "virtio_blk"}

// NewFixture builds the binaries, initrds and the test image into dir.
func NewFixture(dir string) (*Fixture, error) {
	f := &Fixture{Dir: dir, Files: map[string]string{}}
	var err error
	if f.Kernel, err = FetchKernel(); err != nil {
		return nil, err
	}
	bins := map[string]string{"./cmd/cfsboot-init": "cfsboot-init", "./cmd/cfsboot-seal": "cfsboot-seal", "./qemu-tests/testinit": "testinit", "./qemu-tests/provision": "provision"}
	for pkg, name := range bins {
		if err := BuildStatic(pkg, filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	f.CfsbootBin = filepath.Join(dir, "cfsboot")
	if err := BuildStatic("./cmd/cfsboot", f.CfsbootBin); err != nil {
		return nil, err
	}
	initrds := []struct {
		out, init, busybox string
		modules            []string
	}{
		{"initrd-shell.img", "cfsboot-init", "/bin/busybox", initrdModules},
		{"initrd-noshell.img", "cfsboot-init", "", initrdModules},
		{"initrd-provision.img", "provision", "", []string{"virtio_blk"}},
	}
	for _, i := range initrds {
		out, err := os.Create(filepath.Join(dir, i.out))
		if err != nil {
			return nil, err
		}
		_, err = build.Build(out, build.Spec{Init: filepath.Join(dir, i.init), ModulesDir: f.Kernel.Modules, Modules: i.modules, Busybox: i.busybox})
		out.Close()
		if err != nil {
			return nil, err
		}
	}
	f.InitrdShell = filepath.Join(dir, "initrd-shell.img")
	f.InitrdNoShell = filepath.Join(dir, "initrd-noshell.img")
	f.Provision = filepath.Join(dir, "initrd-provision.img")
	return f, f.buildImage()
}

// buildImage makes the test root tree and writes its composefs image and
// objects into the staging tree of the root disk.
func (f *Fixture) buildImage() error {
	root := filepath.Join(f.Dir, "rootfs")
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 300<<10)
	rng.Read(big)
	files := map[string][]byte{
		"usr/share/cfsboot-test/big":    big,
		"usr/share/cfsboot-test/medium": bytes.Repeat([]byte("composefs "), 300),
		"etc/hostname":                  []byte("cfsboot-test\n"),
		"etc/os-release":                []byte("ID=cfsboot-test\nNAME=\"cfsboot test image\"\n"),
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f.Files["/"+p] = hex.EncodeToString(sum[:])
	}
	for _, d := range []string{"var", "sysroot", "sbin", "proc", "sys", "dev", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	init, err := os.ReadFile(filepath.Join(f.Dir, "testinit"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "sbin/init"), init, 0o755); err != nil {
		return err
	}
	cli, err := os.ReadFile(f.CfsbootBin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/cfsboot"), cli, 0o755); err != nil {
		return err
	}
	// The host has no fs-verity: the store made here is staged on the disk
	// for the provisioning VM to add to the real, sealed store.
	st, err := store.Open(filepath.Join(f.Dir, "staging", "provision"))
	if err != nil {
		return err
	}
	tr, err := source.Dir(root, source.Options{})
	if err != nil {
		return err
	}
	d, _, err := st.Commit(tr, erofs.DefaultOptions())
	if err != nil {
		return err
	}
	f.Digest, _ = d.Digest()
	if err := f.stageRepository(root); err != nil {
		return err
	}
	bigNode := tr.Lookup("usr").Lookup("share").Lookup("cfsboot-test").Lookup("big")
	f.BigObject = "composefs/objects/" + bigNode.Payload
	// The second image differs in one inline file.
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=cfsboot-test\nVARIANT=other\n"), 0o644); err != nil {
		return err
	}
	if tr, err = source.Dir(root, source.Options{}); err != nil {
		return err
	}
	if d, _, err = st.Commit(tr, erofs.DefaultOptions()); err != nil {
		return err
	}
	f.OtherDigest, _ = d.Digest()
	return nil
}

// stageRepository stages the tree at root as composefs-rs and bootc lay a
// disk out: a repository with meta.json (fsverity-sha512-12, V1 images,
// images/<hex> symlinks to their objects) and the deployment's state,
// state/deploy/<hex>/{etc,var} with var a link to the shared
// ../../os/default/var.
func (f *Fixture) stageRepository(root string) error {
	staging := filepath.Join(f.Dir, "staging-repo")
	meta, err := repometa.New(verity.SHA512, repometa.Formats{Default: repometa.FormatV1})
	if err != nil {
		return err
	}
	st, err := store.Create(filepath.Join(staging, "provision"), meta)
	if err != nil {
		return err
	}
	defer st.Close()
	tr, err := source.Walk(root, source.Options{})
	if err != nil {
		return err
	}
	if f.RepoDigest, _, err = st.Commit(tr, st.Formats()[0].Options()); err != nil {
		return err
	}
	deploy := filepath.Join(staging, "state", "deploy", f.RepoDigest.String())
	for _, d := range []string{filepath.Join(deploy, "etc"), filepath.Join(staging, "state", "os", "default", "var")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return os.Symlink("../../os/default/var", filepath.Join(deploy, "var"))
}

// Disk returns a private copy of a provisioned root disk: "sealed" has
// fs-verity on every object and image, "unsealed-image" on the objects
// only, "composefs-rs" is RepoDigest's repository and state as
// composefs-rs and bootc lay them out.
func (f *Fixture) Disk(t testing.TB, kind string) string {
	t.Helper()
	v, _ := f.once.LoadOrStore(kind, &diskOnce{})
	d := v.(*diskOnce)
	d.Do(func() { d.path, d.err = f.provision(t, kind) })
	if d.err != nil {
		t.Fatalf("provisioning %s disk: %v", kind, d.err)
	}
	copyPath := filepath.Join(t.TempDir(), "disk.img")
	run(t, "cp", "--sparse=always", d.path, copyPath)
	return copyPath
}

func (f *Fixture) provision(t testing.TB, kind string) (string, error) {
	disk := filepath.Join(f.Dir, "disk-"+kind+".img")
	appendLine, staging := "", filepath.Join(f.Dir, "staging")
	switch kind {
	case "unsealed-image":
		appendLine = "provision.skip=images"
	case "composefs-rs":
		staging = filepath.Join(f.Dir, "staging-repo")
	}
	return disk, f.provisionDisk(t, staging, disk, "128M", appendLine)
}

// provisionDisk makes an ext4 (-O verity) root disk from a staging tree
// whose provision/ holds an unsealed store, and boots the provisioning VM
// to add it, sealed, to the disk's real store.
func (f *Fixture) provisionDisk(t testing.TB, staging, disk, size, appendLine string) error {
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "verity", "-L", "cfsroot", "-d", staging, disk, size)
	vm := Boot(t, f.Kernel, VMOptions{Initrd: f.Provision, Disk: disk, Append: appendLine})
	vm.WaitFor(`PROVISIONED \d+ objects and \d+ images|PROVISION FAILED`)
	vm.WaitExit()
	if vm.Has("PROVISION FAILED") {
		return fmt.Errorf("provisioning VM failed:\n%s", vm.tail(20))
	}
	return nil
}

// CorruptFile flips a byte of the file at path (inside the ext4 disk) on
// the raw disk image, behind the filesystem's back.
func CorruptFile(t testing.TB, disk, path string) {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "blocks /"+path, disk).Output()
	if err != nil {
		t.Fatalf("debugfs blocks %s: %v", path, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("debugfs found no blocks for %s", path)
	}
	block, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		t.Fatalf("debugfs blocks %s: %q", path, out)
	}
	fd, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b := make([]byte, 1)
	off := block*4096 + 100
	fd.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := fd.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Debugfs runs one debugfs command that changes the ext4 disk image,
// failing the test when debugfs reports an error (its exit status does
// not).
func Debugfs(t testing.TB, disk, command string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("debugfs", "-w", "-R", command, disk)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs %q: %v\n%s", command, err, stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			t.Fatalf("debugfs %q: %s", command, stderr.String())
		}
	}
}

// RemoveFile deletes a file from the ext4 disk image.
func RemoveFile(t testing.TB, disk, path string) {
	t.Helper()
	Debugfs(t, disk, "rm /"+path)
}

// ReplaceFile makes path a second name of the file at other (keeping its
// fs-verity), the file that was at path removed.
func ReplaceFile(t testing.TB, disk, path, other string) {
	t.Helper()
	Debugfs(t, disk, "rm /"+path)
	Debugfs(t, disk, "ln /"+other+" /"+path)
	// debugfs's ln leaves the link count alone.
	Debugfs(t, disk, "sif /"+other+" links_count 2")
}

var consoleLine = regexp.MustCompile(`cfsboot: .*|TESTINIT .*`)

// KeyLines are the console lines a person wants to see of a boot.
func KeyLines(vm *VM) []string {
	var out []string
	for _, l := range vm.Lines() {
		if m := consoleLine.FindString(l); m != "" {
			out = append(out, m)
		}
	}
	return out
}
