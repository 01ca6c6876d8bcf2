package deploy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
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
		mgr := newManager(DirESP(filepath.Join(dir, "esp")), filepath.Join(dir, "root"))
		if _, err := mgr.Deploy(context.Background(), "C", 2); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// setupAB makes an ESP with A (blessed) and B (just deployed, the default).
func setupAB(t *testing.T, dir string) {
	t.Helper()
	esp := DirESP(filepath.Join(dir, "esp"))
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

// TestDeployKilled kills a deploy (a child process, SIGKILL) at random
// moments and checks that the ESP always has a complete default entry,
// the old (B) or the new (C), and that a later deploy recovers.
func TestDeployKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the crash test runs many deploys")
	}
	run := func(dir string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		return cmd
	}
	// Time one undisturbed deploy to spread the kills over it.
	dir := t.TempDir()
	setupAB(t, dir)
	start := time.Now()
	if out, err := run(dir).CombinedOutput(); err != nil {
		t.Fatalf("undisturbed deploy: %v\n%s", err, out)
	}
	full := time.Since(start)
	deadline := time.Now().Add(20 * time.Second)
	seen := map[string]int{}
	for i := 0; i < 40 && time.Now().Before(deadline); i++ {
		dir := t.TempDir()
		setupAB(t, dir)
		cmd := run(dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(full) + 1)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		esp := DirESP(filepath.Join(dir, "esp"))
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
