// Package bootimage turns an OCI image into what boots it: it imports the
// image into a store and takes from the imported tree the kernel, its
// modules, os-release and systemd's EFI binaries, builds the initrd with
// cfsboot-init, the UKI and the signed systemd-boot, and seals an installed
// store (in place, or in a short VM when the host kernel lacks fs-verity).
// It fills the seams of package install and package deploy.
package bootimage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"cfsboot/gen/erofs"
	"cfsboot/gen/oci"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/initramfs/build"
	"cfsboot/initramfs/kmod"
	"cfsboot/secureboot"
	"cfsboot/uki"
	"cfsboot/verity"
)

// Paths of systemd's EFI binaries, in an image and on the host.
const (
	StubPath       = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	BootloaderPath = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// DefaultModules are the initrd's modules for real machines and VMs: the
// composefs mount (erofs, overlay, loop), the root filesystem and the
// usual disk controllers. Those the image's kernel lacks as modules
// (built in, or not there) are left out.
var DefaultModules = []string{
	"erofs", "overlay", "loop", "ext4",
	"virtio_blk", "virtio_scsi", "virtio_pci", "nvme", "ahci", "sd_mod", "usb_storage", "xhci_pci", "mmc_block", "sdhci_pci",
	"tpm_tis", "tpm_crb",
}

// Options say where the pieces that do not come from the image are.
type Options struct {
	// Keys is a Secure Boot keys directory (cfsboot keys create); its db
	// key signs the UKI and systemd-boot. "" leaves them unsigned.
	Keys string
	// Stub and Bootloader override systemd-stub and systemd-boot; ""
	// takes the image's, else the host's (StubPath, BootloaderPath).
	Stub, Bootloader string
	// Modules for the initrd; nil for DefaultModules.
	Modules []string
	// Init is cfsboot-init and SealInit cfsboot-seal; "" for the ones
	// next to the running program.
	Init, SealInit string
	// Log reports progress; nil for none.
	Log func(format string, args ...any)
}

// Builder imports images and builds their boot pieces in a work directory
// it removes on Close.
type Builder struct {
	o      Options
	work   string
	images map[verity.Digest]*image
	last   *image
	signer *secureboot.KeyPair
}

// image is what the builder took from one imported image.
type image struct {
	dir        string // work subdirectory
	osID       string
	osRelease  []byte
	version    string // kernel version: the modules directory name
	kernel     string // vmlinuz
	modulesDir string // /lib/modules/<version> on the host
	stub       string // "" when the image has none
	bootloader string // "" when the image has none
	initrd     string // built on first use
}

// New makes a builder; the keys, when given, are loaded now so that a bad
// keys directory fails before any work.
func New(o Options) (*Builder, error) {
	b := &Builder{o: o, images: map[verity.Digest]*image{}}
	if o.Keys != "" {
		k, err := secureboot.LoadKeys(o.Keys)
		if err != nil {
			return nil, fmt.Errorf("secure boot keys %s: %w", o.Keys, err)
		}
		b.signer = &k.DB
	}
	if b.o.Init == "" || b.o.SealInit == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		b.o.Init = cmp.Or(b.o.Init, filepath.Join(filepath.Dir(self), "cfsboot-init"))
		b.o.SealInit = cmp.Or(b.o.SealInit, filepath.Join(filepath.Dir(self), "cfsboot-seal"))
	}
	work, err := os.MkdirTemp("", "cfsboot-bootimage-")
	if err != nil {
		return nil, err
	}
	b.work = work
	return b, nil
}

// Close removes the work directory.
func (b *Builder) Close() error { return os.RemoveAll(b.work) }

func (b *Builder) logf(format string, args ...any) {
	if b.o.Log != nil {
		b.o.Log(format, args...)
	}
}

// Import adds the image ref to the store at storeDir (created when
// missing; sealed by the store when its filesystem has fs-verity) and
// takes its boot pieces. It returns the composefs digest and the
// os-release ID.
func (b *Builder) Import(ctx context.Context, ref, storeDir string) (verity.Digest, string, error) {
	st, err := store.Open(storeDir)
	if err != nil {
		return verity.Digest{}, "", err
	}
	defer st.Close()
	src, closeSource, err := oci.Open(ref, oci.SourceOptions{})
	if err != nil {
		return verity.Digest{}, "", err
	}
	defer closeSource()
	batch := st.NewBatch()
	defer batch.Abort()
	kept := &keepingSink{batch: batch, dir: filepath.Join(b.work, "kept"), files: map[verity.Sum]string{}}
	res, err := oci.Import(src, oci.Options{Sink: kept})
	if err != nil {
		return verity.Digest{}, "", fmt.Errorf("import %s: %w", ref, err)
	}
	if err := ctx.Err(); err != nil {
		return verity.Digest{}, "", err
	}
	sum, _, err := batch.Commit(res.Tree, erofs.DefaultOptions(), "")
	if err != nil {
		return verity.Digest{}, "", fmt.Errorf("import %s: %w", ref, err)
	}
	d, ok := sum.Digest()
	if !ok {
		return verity.Digest{}, "", fmt.Errorf("import %s: store %s names images by %s digests; deployments need SHA-256", ref, storeDir, sum.Algorithm())
	}
	b.logf("imported %s as %s", ref, d)
	img, err := b.extract(reader{st: st, root: res.Tree, kept: kept.files}, res, d)
	if err != nil {
		return verity.Digest{}, "", fmt.Errorf("image %s (%s): %w", ref, d, err)
	}
	b.images[d], b.last = img, img
	return d, img.osID, nil
}

// extract copies the kernel, its modules, os-release and systemd's EFI
// binaries out of the imported tree into the work directory.
func (b *Builder) extract(r reader, res *oci.Result, d verity.Digest) (*image, error) {
	img := &image{dir: filepath.Join(b.work, d.String())}
	var kernel *oci.BootArtefact
	for i, a := range res.Artefacts {
		if a.Kind == "kernel" {
			if kernel != nil {
				return nil, fmt.Errorf("more than one kernel (%s, %s): not supported", kernel.Path, a.Path)
			}
			kernel = &res.Artefacts[i]
		}
	}
	if kernel == nil {
		return nil, errors.New("no kernel in /usr/lib/modules/<version>/vmlinuz")
	}
	img.version = kernel.Version
	img.modulesDir = filepath.Join(img.dir, "modules", img.version)
	if err := r.copyTree(path.Dir(kernel.Path), img.modulesDir); err != nil {
		return nil, err
	}
	img.kernel = filepath.Join(img.modulesDir, "vmlinuz")
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := r.readFile(p)
		if err == nil {
			img.osRelease = data
			img.osID = osReleaseID(data)
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	for _, f := range []struct {
		from string
		to   *string
	}{{StubPath, &img.stub}, {BootloaderPath, &img.bootloader}} {
		data, err := r.readFile(f.from)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		*f.to = filepath.Join(img.dir, path.Base(f.from))
		if err := os.WriteFile(*f.to, data, 0o644); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// osReleaseID is the ID= of an os-release file ("" when it has none).
func osReleaseID(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ID="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// keepingSink stores file contents through the batch and keeps a copy of
// the boot pieces (kernels, modules, os-release, systemd's EFI binaries): the stored
// objects of a store that is already sealed cannot be read back on a host
// kernel without fs-verity.
type keepingSink struct {
	batch *store.Batch
	dir   string
	mu    sync.Mutex // guards files: the import puts on all cores
	files map[verity.Sum]string
}

// PutsInParallel: the batch takes concurrent puts, and files is guarded.
func (*keepingSink) PutsInParallel() {}

// bootPiece reports whether a file at name (as a layer names it) may be
// read back to boot the image.
func bootPiece(name string) bool {
	switch "/" + name {
	case StubPath, BootloaderPath, "/etc/os-release", "/usr/lib/os-release":
		return true
	}
	return strings.HasPrefix(name, "usr/lib/modules/")
}

func (k *keepingSink) Put(r io.Reader) (verity.Sum, error) { return k.batch.Put(r) }

func (k *keepingSink) PutNamed(name string, r io.Reader) (verity.Sum, error) {
	if !bootPiece(name) {
		return k.batch.Put(r)
	}
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		return verity.Sum{}, err
	}
	f, err := os.CreateTemp(k.dir, "file-")
	if err != nil {
		return verity.Sum{}, err
	}
	defer f.Close()
	d, err := k.batch.Put(io.TeeReader(r, f))
	if err != nil {
		os.Remove(f.Name())
		return d, err
	}
	k.mu.Lock()
	k.files[d] = f.Name()
	k.mu.Unlock()
	return d, nil
}

// reader reads files of an imported tree: from the copies the import
// kept, else from the store's objects.
type reader struct {
	st   *store.Store
	root *tree.Node
	kept map[verity.Sum]string
}

// lookup finds p in the tree, following symbolic links (relative to their
// directory, absolute ones from the image's root) as the booted system
// would.
func (r reader) lookup(p string) (*tree.Node, error) {
	n, hops := r.root, 0
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for i := 0; i < len(parts); i++ {
		if parts[i] == "" || parts[i] == "." {
			continue
		}
		if parts[i] == ".." {
			if n.Parent != nil {
				n = n.Parent
			}
			continue
		}
		c := n.Lookup(parts[i])
		if c == nil {
			return nil, fmt.Errorf("%s: %w", p, os.ErrNotExist)
		}
		c = c.Target()
		if c.Mode&tree.SIFMT == tree.SIFLNK {
			if hops++; hops > 40 {
				return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			rest := append(strings.Split(c.Payload, "/"), parts[i+1:]...)
			if strings.HasPrefix(c.Payload, "/") {
				n = r.root
			}
			parts, i = rest, -1
			continue
		}
		n = c
	}
	return n, nil
}

// readFile returns a regular file's content.
func (r reader) readFile(p string) ([]byte, error) {
	n, err := r.lookup(p)
	if err != nil {
		return nil, err
	}
	return r.content(p, n)
}

func (r reader) content(p string, n *tree.Node) ([]byte, error) {
	if n.Mode&tree.SIFMT != tree.SIFREG {
		return nil, fmt.Errorf("%s in the image: not a regular file", p)
	}
	if n.Content != nil || n.Size == 0 {
		return n.Content, nil
	}
	sum, ok := n.FileDigest()
	if !ok {
		return nil, fmt.Errorf("%s in the image: no digest to find its content by", p)
	}
	obj := filepath.Join(r.st.Dir(), "objects", tree.ObjectPathOf(sum))
	if r.kept[sum] != "" {
		obj = r.kept[sum]
	}
	data, err := os.ReadFile(obj)
	if err != nil {
		return nil, fmt.Errorf("%s in the image: %w", p, err)
	}
	if uint64(len(data)) != n.Size {
		return nil, fmt.Errorf("%s in the image: object %s holds %d bytes, want %d", p, obj, len(data), n.Size)
	}
	return data, nil
}

// copyTree writes the image's directory p (regular files, directories and
// symbolic links as they are) to the host directory to.
func (r reader) copyTree(p, to string) error {
	dir, err := r.lookup(p)
	if err != nil {
		return err
	}
	return dir.Walk(func(n *tree.Node) error {
		rel := strings.TrimPrefix(strings.TrimPrefix(n.Path(), dir.Path()), "/")
		dst := filepath.Join(to, filepath.FromSlash(rel))
		t := n.Target()
		switch t.Mode & tree.SIFMT {
		case tree.SIFDIR:
			return os.MkdirAll(dst, 0o755)
		case tree.SIFLNK:
			return os.Symlink(t.Payload, dst)
		case tree.SIFREG:
			data, err := r.content(n.Path(), t)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, 0o644)
		}
		return nil
	})
}

// pick is the override, else the image's, else the host's file.
func pick(what, override, fromImage, host string) (string, error) {
	for _, p := range []string{override, fromImage} {
		if p != "" {
			return p, nil
		}
	}
	if _, err := os.Stat(host); err != nil {
		return "", fmt.Errorf("no %s: the image has none at %s, the host has none (%w); give one with a flag", what, host, err)
	}
	return host, nil
}

func (b *Builder) image(d verity.Digest) (*image, error) {
	img := b.images[d]
	if img == nil {
		return nil, fmt.Errorf("image %s was not imported by this run", d)
	}
	return img, nil
}

// initrd builds (once per image) the initrd: cfsboot-init and the
// modules of Options.Modules the image's kernel has.
func (b *Builder) initrd(img *image) (string, error) {
	if img.initrd != "" {
		return img.initrd, nil
	}
	want := b.o.Modules
	if want == nil {
		want = DefaultModules
	}
	var mods []string
	ix := &kmod.Index{}
	if len(want) > 0 {
		var err error
		if ix, err = kmod.NewIndex(img.modulesDir); err != nil {
			return "", err
		}
	}
	for _, m := range want {
		if ix.Has(m) {
			mods = append(mods, m)
		} else if b.o.Modules != nil {
			return "", fmt.Errorf("module %s: not a module of kernel %s", m, img.version)
		}
	}
	out := filepath.Join(img.dir, "initrd.img")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	res, err := build.Build(f, build.Spec{Init: b.o.Init, ModulesDir: img.modulesDir, Modules: mods})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	b.logf("initrd for kernel %s: cfsboot-init and %d modules (%s)", img.version, len(res.Modules), strings.Join(res.Modules, " "))
	img.initrd = out
	return out, nil
}

// sign signs an EFI image with the db key, when there is one.
func (b *Builder) sign(what string, data []byte) ([]byte, error) {
	if b.signer == nil {
		return data, nil
	}
	signed, err := uki.Sign(data, b.signer.Key, b.signer.Cert)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", what, err)
	}
	return signed, nil
}

// BuildUKI builds the UKI of an imported image: its kernel, the initrd,
// the command line and its os-release, on the chosen systemd-stub, signed
// with the db key. It is a deploy.BuildUKI.
func (b *Builder) BuildUKI(_ context.Context, d verity.Digest, cmdline, out string) error {
	img, err := b.image(d)
	if err != nil {
		return err
	}
	stubPath, err := pick("systemd-stub", b.o.Stub, img.stub, StubPath)
	if err != nil {
		return err
	}
	initrd, err := b.initrd(img)
	if err != nil {
		return err
	}
	parts := uki.Parts{Cmdline: []byte(cmdline), OSRelease: img.osRelease, Uname: []byte(img.version)}
	var stub []byte
	for _, in := range []struct {
		path string
		into *[]byte
	}{{stubPath, &stub}, {img.kernel, &parts.Linux}, {initrd, &parts.Initrd}} {
		if *in.into, err = os.ReadFile(in.path); err != nil {
			return err
		}
	}
	image, err := uki.Build(stub, parts)
	if err != nil {
		return fmt.Errorf("uki on %s: %w", stubPath, err)
	}
	if image, err = b.sign("the UKI", image); err != nil {
		return err
	}
	return os.WriteFile(out, image, 0o644)
}

// Bootloader returns systemd-boot (the last imported image's, else the
// host's, or Options.Bootloader), signed with the db key, as a host file.
func (b *Builder) Bootloader(context.Context) (string, error) {
	fromImage := ""
	if b.last != nil {
		fromImage = b.last.bootloader
	}
	p, err := pick("systemd-boot", b.o.Bootloader, fromImage, BootloaderPath)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	if data, err = b.sign(p, data); err != nil {
		return "", err
	}
	out := filepath.Join(b.work, "systemd-bootx64.efi")
	return out, os.WriteFile(out, data, 0o644)
}
