package deploy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv makes the test binary the deploy that TestDeployKilled kills.
const crashChildEnv = "CFSBOOT_DEPLOY_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		mgr := newManager(crashESP(dir), filepath.Join(dir, "root"))
		if _, err := mgr.Deploy(context.Background(), "C", 2); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashESP is the ESP of a crash test directory: a directory, or a FAT
// image (esp.img) changed with mtools.
func crashESP(dir string) ESP {
	if _, err := os.Stat(filepath.Join(dir, "esp.img")); err == nil {
		return ImageESP{Image: filepath.Join(dir, "esp.img")}
	}
	return DirESP(filepath.Join(dir, "esp"))
}

// setupAB makes an ESP with A (blessed) and B (just deployed, the default).
func setupAB(t *testing.T, dir string, fat bool) {
	t.Helper()
	if fat {
		if out, err := exec.Command("mkfs.vfat", "-F", "32", "-C", filepath.Join(dir, "esp.img"), "65536").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.vfat: %v\n%s", err, out)
		}
	}
	esp := crashESP(dir)
	m := newManager(esp, filepath.Join(dir, "root"))
	esp.MkdirAll("loader")
	if err := esp.Put(LoaderConf, bytes.NewReader(LoaderConfig("debian", 3))); err != nil {
		t.Fatal(err)
	}
	a, err := m.Deploy(context.Background(), "A", 2)
	if err != nil {
		t.Fatal(err)
	}
	esp.Rename(EntryDir+"/"+a.File, EntryDir+"/"+a.ID())
	if _, err := m.Deploy(context.Background(), "B", 2); err != nil {
		t.Fatal(err)
	}
}

// TestDeployKilled kills a deploy (a child process and the mtools it
// runs: SIGKILL to the process group) at random moments and checks that
// the ESP always has a complete default entry, the old (B) or the new (C),
// and that a later deploy recovers. The ESP is a directory, or a FAT image
// changed with mtools (offline deploys to a disk file).
func TestDeployKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the crash test runs many deploys")
	}
	t.Run("dir", func(t *testing.T) { killDeploys(t, false) })
	t.Run("fat", func(t *testing.T) {
		for _, tool := range []string{"mkfs.vfat", "mcopy", "mmove", "fsck.vfat"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
		killDeploys(t, true)
	})
}

func killDeploys(t *testing.T, fat bool) {
	run := func(dir string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	// Time one undisturbed deploy to spread the kills over it.
	dir := t.TempDir()
	setupAB(t, dir, fat)
	start := time.Now()
	if out, err := run(dir).CombinedOutput(); err != nil {
		t.Fatalf("undisturbed deploy: %v\n%s", err, out)
	}
	full := time.Since(start)
	deadline := time.Now().Add(20 * time.Second)
	seen := map[string]int{}
	for i := 0; i < 40 && time.Now().Before(deadline); i++ {
		dir := t.TempDir()
		setupAB(t, dir, fat)
		cmd := run(dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(full) + 1)))
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()

		esp := crashESP(dir)
		m := newManager(esp, filepath.Join(dir, "root"))
		deps, err := m.Entries()
		if err != nil {
			t.Fatal(err)
		}
		s := summarize(deps)
		if s.def < 0 {
			t.Fatalf("run %d: no default entry left: %v", i, deps)
		}
		def := deps[s.def]
		if def.ID() != id(2, "B") && def.ID() != id(3, "C") {
			t.Fatalf("run %d: default %s is neither B nor C", i, def.File)
		}
		seen[def.ID()]++
		for _, d := range deps {
			data, err := esp.ReadFile(EntryDir + "/" + d.File)
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest == nil || checkUKI(data, *d.Digest) != nil {
				t.Fatalf("run %d: entry %s is visible but not complete (digest %v)", i, d.File, d.Digest)
			}
		}
		if def, _ := ParseLoaderConf(mustRead(t, esp, LoaderConf)); def != "debian-*" {
			t.Fatalf("run %d: loader.conf default %q", i, def)
		}
		if fat {
			// mtools writes the FAT and the directory when it closes the
			// drive. A kill in the middle may leave the second FAT copy and
			// the free-cluster hint behind the first (fsck uses the first
			// FAT and recounts: nothing is lost), or clusters allocated to a
			// temporary file whose directory entry was never written (lost
			// space, which the boot's fsck of the ESP reclaims), or a
			// temporary file whose size and clusters disagree; anything
			// else is damage.
			if out, err := exec.Command("fsck.vfat", "-n", filepath.Join(dir, "esp.img")).CombinedOutput(); err != nil && !onlyStaleFATHints(string(out)) {
				t.Fatalf("run %d: fsck.vfat -n after the kill: %v\n%s", i, err, out)
			}
		}
		// Whatever the kill left behind, deploying again works.
		if out, err := run(dir).CombinedOutput(); err != nil {
			t.Fatalf("run %d: deploy after the kill: %v\n%s", i, err, out)
		}
		names, _ := esp.List(EntryDir)
		for _, n := range names {
			if strings.HasSuffix(n, ".efi") && !strings.HasPrefix(n, ".") {
				if _, err := ParseEntry(n); err != nil {
					t.Fatalf("run %d: stray entry %s", i, n)
				}
			}
		}
	}
	t.Logf("default after the kill (entry id: runs): %v", seen)
}

// onlyStaleFATHints reports whether fsck.vfat -n found nothing worse than
// a stale second FAT copy and free-cluster count, lost clusters, and
// findings about temporary files a kill left half written (the next
// deploy replaces them).
func onlyStaleFATHints(out string) bool {
	inTemp := false
	for _, raw := range strings.Split(out, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "", strings.HasPrefix(line, "fsck.fat "), strings.HasSuffix(line, "clusters"),
			line == "FATs differ but appear to be intact.", line == "Using first FAT.",
			strings.HasPrefix(line, "Free cluster summary wrong"), line == "Auto-correcting.",
			strings.HasPrefix(line, "Reclaimed ") && strings.Contains(line, " unused clusters ("),
			line == "Leaving filesystem unchanged.":
			inTemp = false
		case strings.HasPrefix(line, "/"): // a finding about one file
			inTemp = strings.HasPrefix(path.Base(line), ".") && strings.HasSuffix(line, ".tmp")
			if !inTemp {
				return false
			}
		case inTemp && strings.HasPrefix(raw, " "): // what fsck found in it
		default:
			return false
		}
	}
	return true
}

// The fsck outputs the kills produced are harmless; the same finding about
// an entry, not a temporary file, is damage.
func TestOnlyStaleFATHints(t *testing.T) {
	lost := "fsck.fat 4.2 (2021-01-31)\nReclaimed 4097 unused clusters (2097664 bytes).\nFree cluster summary wrong (116726 vs. really 120823)\n  Auto-correcting.\n\nLeaving filesystem unchanged.\n/tmp/x/esp.img: 6 files, 8199/129022 clusters\n"
	temp := "fsck.fat 4.2 (2021-01-31)\n/EFI/Linux/.debian-3-bba2f94014a0+3.efi.tmp\n  Contains a free cluster (8201). Assuming EOF.\n/EFI/Linux/.debian-3-bba2f94014a0+3.efi.tmp\n  File size is 2097415 bytes, cluster chain length is 0 bytes.\n  Truncating file to 0 bytes.\n\nLeaving filesystem unchanged.\n"
	entry := strings.ReplaceAll(temp, ".debian-3-bba2f94014a0+3.efi.tmp", "debian-3-bba2f94014a0+3.efi")
	for name, c := range map[string]struct {
		out  string
		want bool
	}{"lost clusters": {lost, true}, "temporary file": {temp, true}, "entry": {entry, false}, "other": {"Dirty bit is set.\n", false}} {
		if got := onlyStaleFATHints(c.out); got != c.want {
			t.Errorf("%s: onlyStaleFATHints = %v, want %v", name, got, c.want)
		}
	}
}
