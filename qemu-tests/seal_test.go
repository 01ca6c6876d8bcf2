//go:build qemu

package qemutests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cfsboot/disk"
	"cfsboot/seal"
	"cfsboot/verity"
)

// sealDisk makes an installed-looking disk: a GPT with an ESP and an ext4
// (-O verity) root partition whose composefs/ store holds unsealed
// objects and an image; tamper changes one object's content after naming.
func sealDisk(t *testing.T, tamper bool) (path string, root disk.Partition, files []string) {
	t.Helper()
	dir := t.TempDir()
	staging := filepath.Join(dir, "root")
	store := filepath.Join(staging, "composefs")
	for i := 0; i < 20; i++ {
		data := []byte(strings.Repeat(fmt.Sprintf("object %d ", i), 100*(i+1)))
		d := verity.ComputeBytes(data).String()
		if tamper && i == 7 {
			data[0] ^= 1
		}
		os.MkdirAll(filepath.Join(store, "objects", d[:2]), 0o755)
		os.WriteFile(filepath.Join(store, "objects", d[:2], d[2:]), data, 0o644)
		files = append(files, "composefs/objects/"+d[:2]+"/"+d[2:])
	}
	image := []byte("not really an erofs image, but named by its digest")
	d := verity.ComputeBytes(image).String()
	os.MkdirAll(filepath.Join(store, "images"), 0o755)
	os.WriteFile(filepath.Join(store, "images", d), image, 0o644)
	files = append(files, "composefs/images/"+d)

	path = filepath.Join(dir, "disk.img")
	f, size, err := disk.Open(path, 160<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := disk.Layout(size, []disk.Partition{{Type: disk.TypeESP, Name: "ESP", Size: 33 << 20}, {Type: disk.TypeRootX86_64, Name: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	root = tab.Partitions[1]
	if err := disk.MakeExt4(path, root.Offset(), root.Bytes(), root.UUID, "root", staging); err != nil {
		t.Fatal(err)
	}
	return path, root, files
}

// verityFlag reads EXT4_VERITY_FL (0x100000) of a file on the root
// partition with debugfs: the filesystem's word, not ours.
func verityFlag(t *testing.T, path string, root disk.Partition, file string) bool {
	t.Helper()
	part := path + ".root"
	if _, err := os.Stat(part); err != nil {
		run(t, "dd", "if="+path, "of="+part, "bs=1M", fmt.Sprintf("skip=%d", root.Offset()>>20), fmt.Sprintf("count=%d", root.Bytes()>>20), "status=none")
	}
	out, err := exec.Command("debugfs", "-R", "stat /"+file, part).Output()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v", file, err)
	}
	var flags uint32
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "Flags: "); i >= 0 {
			fmt.Sscanf(line[i+len("Flags: "):], "0x%x", &flags)
		}
	}
	return flags&0x100000 != 0
}

func sealOptions(t *testing.T, k Kernel, path string, root disk.Partition) seal.Options {
	init := filepath.Join(t.TempDir(), "cfsboot-seal")
	if err := BuildStatic("./cmd/cfsboot-seal", init); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(repoRoot, ".cache", "qemu-logs"), 0o755)
	log, err := os.Create(filepath.Join(repoRoot, ".cache", "qemu-logs", logName(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return seal.Options{Kernel: k.Image, ModulesDir: k.Modules, Init: init, Disk: path, Root: "PARTUUID=" + root.UUID.String(), Console: log}
}

func TestSealVM(t *testing.T) {
	t.Parallel()
	k, err := FetchKernel()
	if err != nil {
		t.Fatal(err)
	}
	path, root, files := sealDisk(t, false)
	if verityFlag(t, path, root, files[0]) {
		t.Fatal("an object has fs-verity before sealing")
	}
	os.Remove(path + ".root")
	o := sealOptions(t, k, path, root)
	var last [2]int
	o.Progress = func(done, total int) { last = [2]int{done, total} }
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	n, err := seal.Seal(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sealed %d files in %v", n, time.Since(start))
	if n != len(files) || last != [2]int{len(files), len(files)} {
		t.Errorf("sealed %d files, last progress %v; want %d", n, last, len(files))
	}
	for _, f := range files {
		if !verityFlag(t, path, root, f) {
			t.Errorf("%s has no fs-verity flag after sealing", f)
		}
	}
	run(t, "e2fsck", "-fn", path+".root")
}

func TestSealVMRefusesTamperedObject(t *testing.T) {
	t.Parallel()
	k, err := FetchKernel()
	if err != nil {
		t.Fatal(err)
	}
	path, root, _ := sealDisk(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	_, err = seal.Seal(ctx, sealOptions(t, k, path, root))
	if err == nil || !strings.Contains(err.Error(), "does not match its name") {
		t.Fatalf("sealing a store with a tampered object: %v", err)
	}
}
