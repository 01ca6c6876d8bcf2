package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
)

func runStore(args ...string) (string, string, error) {
	cmd := newStoreCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestStoreCmd(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	src := filepath.Join(base, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "big"), []byte(strings.Repeat("x", 5000)), 0o644)
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := source.Walk(src, source.Options{})
	if err == nil {
		_, _, err = st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions()})
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := runStore("fsck", "--store", dir); err != nil || out != dir+": ok\n" {
		t.Fatalf("fsck: %q %v", out, err)
	}
	os.WriteFile(filepath.Join(base, "file"), nil, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fsck", "--store", filepath.Join(base, "nonexistent")}, "no such file or directory"},
		{[]string{"fsck", "--store", src}, "not a composefs object store"},
		{[]string{"gc", "--store", filepath.Join(base, "file")}, "not a directory"},
		{[]string{"fsck"}, `"store" not set`},
		{[]string{"gc", "--store", dir, "extra"}, "unknown command"},
		{[]string{"gc", "--store", dir, "--wait", "--no-wait"}, "none of the others can be"},
	} {
		if _, _, err := runStore(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("store %s: %v, want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	// An unreferenced object and a temporary file: gc removes both.
	os.WriteFile(filepath.Join(dir, "objects", ".tmp-object-x"), []byte("half"), 0o644)
	orphan := filepath.Join(dir, "objects", "00", strings.Repeat("1", 62))
	os.MkdirAll(filepath.Dir(orphan), 0o755)
	os.WriteFile(orphan, nil, 0o644)
	out, _, err := runStore("gc", "--store", dir, "--dry-run", "--json")
	var rep storeGCReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Removed) != 2 || !rep.DryRun {
		t.Fatalf("gc --dry-run --json: %q %v", out, err)
	}
	// The orphan is misnamed (its content is empty): fsck --repair removes it.
	out, _, err = runStore("fsck", "--store", dir, "--repair", "--json")
	var frep storeFsckReport
	if err != nil || json.Unmarshal([]byte(out), &frep) != nil || !frep.OK || len(frep.Removed) != 2 {
		t.Fatalf("fsck --repair --json: %q %v", out, err)
	}
	if out, _, err := runStore("gc", "--store", dir); err != nil || out != "removed 0 file(s), 0 bytes\n" {
		t.Fatalf("gc: %q %v", out, err)
	}
}

// gc --no-wait names the process holding the store; gc waits for it.
func TestStoreGCNoWaitNamesHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// flock(1) locks, then runs sleep, which inherits the lock: kill both.
	holder := exec.Command("flock", "--shared", dir, "sleep", "30")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Skipf("flock(1): %v", err)
	}
	stopHolder := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() }
	defer stopHolder()
	for i := 0; i < 100 && err == nil; i++ { // until flock(1) has the lock
		time.Sleep(50 * time.Millisecond)
		_, _, err = runStore("gc", "--store", dir, "--no-wait")
	}
	want := fmt.Sprintf("cannot take the exclusive lock: held by process %d flock (shared lock)", holder.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("gc --no-wait: %v, want %q", err, want)
	}
	// Without --no-wait, gc says whom it waits for and runs once it is gone.
	type result struct {
		stderr string
		err    error
	}
	done := make(chan result)
	go func() {
		_, stderr, err := runStore("gc", "--store", dir)
		done <- result{stderr, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("gc did not wait: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	stopHolder()
	r := <-done
	if r.err != nil || !strings.Contains(r.stderr, fmt.Sprintf("waiting for the lock held by process %d flock", holder.Process.Pid)) {
		t.Fatalf("gc: %+v", r)
	}
}
