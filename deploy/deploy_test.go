package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cfsboot/verity"
)

// dirImages is a fake image store kept in a directory (so that a child
// process sees what its parent added): images/<digest> holds the ref.
type dirImages struct{ dir string }

func refDigest(ref string) verity.Digest { return verity.ComputeBytes([]byte(ref)) }

func (s dirImages) Add(_ context.Context, ref string) (verity.Digest, error) {
	d := refDigest(ref)
	os.MkdirAll(filepath.Join(s.dir, "images"), 0o755)
	return d, os.WriteFile(filepath.Join(s.dir, "images", d.String()), []byte(ref), 0o644)
}

func (s dirImages) List() ([]verity.Digest, error) {
	names, _ := filepath.Glob(filepath.Join(s.dir, "images", "*"))
	var ds []verity.Digest
	for _, n := range names {
		d, err := verity.ParseDigest(filepath.Base(n))
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func (s dirImages) Remove(d verity.Digest) error {
	return os.Remove(filepath.Join(s.dir, "images", d.String()))
}

func (s dirImages) GC() error {
	f, err := os.OpenFile(filepath.Join(s.dir, "gc-runs"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.WriteString("gc\n")
	return f.Close()
}

// fakeUKI is a "UKI" whose completeness can be checked: a header naming
// the digest, the cmdline and the body's SHA-256, then the body.
const ukiBody = 2 << 20

func fakeUKI(_ context.Context, d verity.Digest, cmdline, out string) error {
	body := bytes.Repeat([]byte(d.String()[:8]), ukiBody/8)
	sum := sha256.Sum256(body)
	return os.WriteFile(out, append([]byte(fmt.Sprintf("UKI %s %x\n%s\n", d, sum, cmdline)), body...), 0o644)
}

// checkUKI says whether data is a complete fake UKI for d.
func checkUKI(data []byte, d verity.Digest) error {
	head, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return errors.New("no header")
	}
	var digest, sum string
	if _, err := fmt.Sscanf(string(head), "UKI %s %s", &digest, &sum); err != nil || digest != d.String() {
		return fmt.Errorf("header %q", head)
	}
	_, body, _ := bytes.Cut(rest, []byte("\n"))
	if got := sha256.Sum256(body); fmt.Sprintf("%x", got) != sum {
		return fmt.Errorf("truncated: %d body bytes", len(body))
	}
	return nil
}

func newManager(esp ESP, root string) *Manager {
	return &Manager{ESP: esp, OS: "debian", Images: dirImages{root}, UKI: fakeUKI,
		Cmdline: "root=PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4 rw", StateDir: filepath.Join(root, "state")}
}

func names(t *testing.T, esp ESP) []string {
	t.Helper()
	n, err := esp.List(EntryDir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(n)
	return n
}

func statusOf(t *testing.T, m *Manager, b Booted) Status {
	t.Helper()
	st, err := m.Status(b)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func id(serial int, ref string) string {
	return fmt.Sprintf("debian-%d-%s.efi", serial, refDigest(ref).String()[:12])
}

// exerciseLifecycle runs the loop on one ESP: install A, deploy B,
// deploy C and D that fail all their tries, see B chosen, roll back to A,
// and prune with --keep.
func exerciseLifecycle(t *testing.T, esp ESP) {
	root := t.TempDir()
	m := newManager(esp, root)
	ctx := context.Background()
	if err := esp.MkdirAll("loader"); err != nil {
		t.Fatal(err)
	}
	if err := esp.Put(LoaderConf, bytes.NewReader(LoaderConfig("debian", 3))); err != nil {
		t.Fatal(err)
	}
	a, err := m.Deploy(ctx, "A", 5)
	if err != nil {
		t.Fatal(err)
	}
	if a.File != id(1, "A")[:len(id(1, "A"))-4]+"+3.efi" {
		t.Errorf("first deployment named %s", a.File)
	}
	data, err := esp.ReadFile(EntryDir + "/" + a.File)
	if err != nil || checkUKI(data, refDigest("A")) != nil || !bytes.Contains(data, []byte("composefs="+refDigest("A").String()+" root=PARTUUID=")) {
		t.Fatalf("UKI of A on the ESP: %v %v", err, checkUKI(data, refDigest("A")))
	}
	// A boots and is blessed (systemd-bless-boot drops the counter).
	if err := esp.Rename(EntryDir+"/"+a.File, EntryDir+"/"+id(1, "A")); err != nil {
		t.Fatal(err)
	}
	bootedA := Booted{Entry: id(1, "A")}
	if st := statusOf(t, m, bootedA); st.Default != id(1, "A") || st.Rollback != "" || !st.BootedBlessed {
		t.Errorf("after install: %+v", st)
	}

	if _, err := m.Deploy(ctx, "B", 5); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, m, bootedA)
	if st.Default != id(2, "B") || st.Rollback != id(1, "A") || *st.Entries[0].TriesLeft != 3 {
		t.Errorf("after deploying B: %+v", st)
	}
	esp.Rename(EntryDir+"/"+strings.TrimSuffix(id(2, "B"), ".efi")+"+3.efi", EntryDir+"/"+id(2, "B"))

	// C and D use up their tries (systemd-boot's renames): B is chosen again.
	for _, ref := range []string{"C", "D"} {
		d, err := m.Deploy(ctx, ref, 5)
		if err != nil {
			t.Fatal(err)
		}
		bad := d.Entry
		bad.TriesLeft, bad.TriesDone = 0, 3
		if err := esp.Rename(EntryDir+"/"+d.File, EntryDir+"/"+bad.Name()); err != nil {
			t.Fatal(err)
		}
	}
	st = statusOf(t, m, Booted{Entry: id(2, "B")})
	if st.Default != id(2, "B") || st.Rollback != id(1, "A") || !st.BootedBlessed {
		t.Errorf("after C and D failed: %+v", st)
	}
	var badSeen int
	for _, e := range st.Entries {
		if e.Bad && *e.TriesLeft == 0 {
			badSeen++
		}
	}
	if badSeen != 2 {
		t.Errorf("want 2 entries shown with 0 tries: %+v", st.Entries)
	}

	// Rollback: A becomes the default with a new serial, in one rename.
	before := names(t, esp)
	r, err := m.Rollback()
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != id(5, "A") {
		t.Errorf("rollback made %s the default", r.ID())
	}
	after := names(t, esp)
	if len(before) != len(after) {
		t.Errorf("rollback changed the number of entries: %v -> %v", before, after)
	}
	st = statusOf(t, m, Booted{Entry: id(2, "B")})
	if st.Default != id(5, "A") || st.Rollback != id(2, "B") {
		t.Errorf("after rollback: %+v", st)
	}

	// --keep 2 while B is booted: A (default, newest serial) and B stay as
	// the newest good ones (B is booted, too); C and D, which used up their
	// tries, go with their images and state, though D is newer than B.
	os.MkdirAll(filepath.Join(root, "state", "deploy", refDigest("C").String(), "etc"), 0o755)
	bDigest := refDigest("B")
	m.Booted = &bDigest
	if err := m.Prune(2); err != nil {
		t.Fatal(err)
	}
	st = statusOf(t, m, Booted{Entry: id(2, "B")})
	var kept []string
	for _, e := range st.Entries {
		kept = append(kept, e.ID)
	}
	slices.Sort(kept)
	want := []string{id(2, "B"), id(5, "A")}
	slices.Sort(want)
	if !slices.Equal(kept, want) {
		t.Errorf("after prune --keep 2: %v, want %v", kept, want)
	}
	if _, err := os.Stat(filepath.Join(root, "state", "deploy", refDigest("C").String())); !os.IsNotExist(err) {
		t.Errorf("state of C survived the prune: %v", err)
	}
	imgs, _ := dirImages{root}.List()
	if len(imgs) != 2 || slices.Contains(imgs, refDigest("C")) || slices.Contains(imgs, refDigest("D")) {
		t.Errorf("images after prune: %v", imgs)
	}
	if gc, _ := os.ReadFile(filepath.Join(root, "gc-runs")); string(gc) != "gc\n" {
		t.Errorf("gc runs: %q", gc)
	}
	// Deploying what is already deployed makes it the default again.
	again, err := m.Deploy(ctx, "B", 3)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != id(6, "B") || again.TriesLeft != 3 || len(names(t, esp)) != 2 {
		t.Errorf("redeploy of B: %+v, entries %v", again, names(t, esp))
	}
	if def, _ := ParseLoaderConf(mustRead(t, esp, LoaderConf)); def != "debian-*" {
		t.Errorf("loader.conf default %q changed", def)
	}
}

func mustRead(t *testing.T, esp ESP, name string) []byte {
	t.Helper()
	b, err := esp.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLifecycleDirESP(t *testing.T) { exerciseLifecycle(t, DirESP(t.TempDir())) }

func TestLifecycleImageESP(t *testing.T) {
	for _, tool := range []string{"mkfs.vfat", "mdir", "mcopy", "mmove", "mdel", "mtype", "mmd", "fsck.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (mtools, dosfstools)", tool)
		}
	}
	// The ESP at an offset inside a disk file, as `deploy --disk` sees it.
	disk := filepath.Join(t.TempDir(), "disk.img")
	fat := disk + ".fat"
	if out, err := exec.Command("mkfs.vfat", "-F", "32", "-C", fat, "65536").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	fatData, _ := os.ReadFile(fat)
	const offset = 1 << 20
	if err := os.WriteFile(disk, append(make([]byte, offset), fatData...), 0o644); err != nil {
		t.Fatal(err)
	}
	exerciseLifecycle(t, ImageESP{Image: disk, Offset: offset})
	after, _ := os.ReadFile(disk)
	os.WriteFile(fat, after[offset:], 0o644)
	if out, err := exec.Command("fsck.vfat", "-n", fat).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n after the lifecycle: %v\n%s", err, out)
	}
}
