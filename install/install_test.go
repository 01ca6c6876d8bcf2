package install

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cfsboot/disk"
	"cfsboot/verity"
)

func TestInstallWithoutSeams(t *testing.T) {
	_, err := Install(context.Background(), Options{Image: "x", Disk: filepath.Join(t.TempDir(), "d"), Size: 1 << 30}, Seams{})
	if err == nil || !strings.Contains(err.Error(), "seams need") {
		t.Fatalf("Install with no seams: %v", err)
	}
}

func TestInstallDiskFile(t *testing.T) {
	for _, tool := range []string{"sfdisk", "mkfs.vfat", "mcopy", "mdir", "mtype", "mkfs.ext4", "e2fsck", "debugfs", "fsck.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	image := []byte("an erofs image")
	digest := verity.ComputeBytes(image)
	loader := filepath.Join(dir, "systemd-bootx64.efi")
	os.WriteFile(loader, []byte("MZ systemd-boot"), 0o644)
	var sealed disk.Partition
	var cmdline string
	seams := Seams{
		Import: func(_ context.Context, ref, store string) (verity.Digest, string, error) {
			os.MkdirAll(filepath.Join(store, "images"), 0o755)
			return digest, "debian", os.WriteFile(filepath.Join(store, "images", digest.String()), image, 0o644)
		},
		BuildUKI: func(_ context.Context, d verity.Digest, c, out string) error {
			cmdline = c
			return os.WriteFile(out, []byte("MZ uki "+c), 0o644)
		},
		Bootloader: func(context.Context) (string, error) { return loader, nil },
		Seal: func(_ context.Context, path string, root disk.Partition) error {
			sealed = root
			return nil
		},
	}
	path := filepath.Join(dir, "disk.img")
	var log []string
	res, err := Install(context.Background(), Options{Image: "oci:x", Disk: path, Size: 256 << 20, ESPSize: 64 << 20, Timeout: 2, CmdlineExtra: "console=ttyS0",
		Log: func(f string, a ...any) { log = append(log, f) }}, seams)
	if err != nil {
		t.Fatal(err)
	}
	if sealed != res.Root {
		t.Errorf("sealed %+v, root %+v", sealed, res.Root)
	}
	want := "composefs=" + digest.String() + " root=PARTUUID=" + res.Root.UUID.String() + " rw console=ttyS0"
	if cmdline != want {
		t.Errorf("UKI cmdline %q, want %q", cmdline, want)
	}
	if res.Entry != "debian-1-"+digest.String()[:12]+"+3.efi" {
		t.Errorf("entry %s", res.Entry)
	}
	out, err := exec.Command("sfdisk", "--verify", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
	drive := path + "@@" + strconv.FormatInt(res.ESP.Offset(), 10)
	out, err = exec.Command("mdir", "-b", "-i", drive, "::/EFI/Linux").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "::/EFI/Linux/"+res.Entry {
		t.Errorf("EFI/Linux on the ESP: %v\n%s", err, out)
	}
	for name, want := range map[string]string{
		"::/loader/loader.conf":              "default debian-*\ntimeout 2\n",
		"::/EFI/BOOT/BOOTX64.EFI":            "MZ systemd-boot",
		"::/EFI/systemd/systemd-bootx64.efi": "MZ systemd-boot",
	} {
		out, err := exec.Command("mtype", "-i", drive, name).Output()
		if err != nil || !strings.HasSuffix(string(out), want) {
			t.Errorf("%s: %q (%v), want it to end with %q", name, out, err, want)
		}
	}
	f, _ := os.Open(path)
	defer f.Close()
	part := func(p disk.Partition, name string) string {
		dst := filepath.Join(dir, name)
		out, _ := os.Create(dst)
		io.Copy(out, io.NewSectionReader(f, p.Offset(), p.Bytes()))
		out.Close()
		return dst
	}
	if out, err := exec.Command("fsck.vfat", "-n", part(res.ESP, "esp")).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	rootImg := part(res.Root, "root")
	if out, err := exec.Command("e2fsck", "-fn", rootImg).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	out, _ = exec.Command("debugfs", "-R", "cat /composefs/images/"+digest.String(), rootImg).Output()
	if string(out) != string(image) {
		t.Errorf("image on the root partition: %q", out)
	}
	if out, _ := exec.Command("debugfs", "-R", "stat /state", rootImg).CombinedOutput(); !strings.Contains(string(out), "directory") {
		t.Errorf("no state directory on the root partition: %s", out)
	}
}

func TestInstallFailsBeforeWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	boom := errors.New("registry unreachable")
	_, err := Install(context.Background(), Options{Image: "x", Disk: path, Size: 1 << 30}, Seams{
		Import:     func(context.Context, string, string) (verity.Digest, string, error) { return verity.Digest{}, "", boom },
		BuildUKI:   func(context.Context, verity.Digest, string, string) error { return nil },
		Bootloader: func(context.Context) (string, error) { return "", nil },
		Seal:       func(context.Context, string, disk.Partition) error { return nil },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	head := make([]byte, 1024)
	f, _ := os.Open(path)
	defer f.Close()
	f.ReadAt(head, 0)
	if strings.Contains(string(head), "EFI PART") {
		t.Error("a partition table was written although the import failed")
	}
}
