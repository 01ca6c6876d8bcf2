package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
)

// TestHelperProcess is the child of the tests below, run from the test
// binary itself: "create DIR SRC" commits a tree; "hold DIR" holds a shared
// lock until its stdin closes.
func TestHelperProcess(t *testing.T) {
	args := strings.Fields(os.Getenv("STORE_TEST_HELPER"))
	if len(args) == 0 {
		t.Skip("only a helper for other tests")
	}
	switch args[0] {
	case "create":
		if _, err := create(args[1], args[2], true); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "hold":
		st, err := store.Open(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		st.Close()
	}
	os.Exit(0)
}

func helper(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "STORE_TEST_HELPER="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	return cmd
}

// A create killed at any point leaves a store that fsck finds clean; what
// it leaves behind (temporary files, unreferenced objects) gc removes.
func TestCreateKilledAtRandomPoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	storetest.KillAtRandom(t, dir, 40, func(run int) *exec.Cmd {
		src := filepath.Join(t.TempDir(), fmt.Sprintf("src%d", run))
		makeTree(t, src, 40, 20, int64(run+1))
		return helper("create", dir, src)
	})
}

func TestLockHolderIsNamed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	cmd := helper("hold", dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	_, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive, NoWait: true})
	var busy *store.BusyError
	if !errors.As(err, &busy) || len(busy.Holders) != 1 || busy.Holders[0].PID != cmd.Process.Pid || busy.Holders[0].Lock != store.Shared {
		t.Fatalf("no-wait: %v (%+v)", err, busy)
	}
	if want := fmt.Sprintf("held by process %d %s (shared lock)", cmd.Process.Pid, filepath.Base(os.Args[0])[:min(15, len(filepath.Base(os.Args[0])))]); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	// Readers and writers share the lock.
	shared, err := store.OpenExisting(dir, store.OpenOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	shared.Close()
	// Waiting: told who holds it, and gets it once the holder is gone.
	waited := make(chan []store.Holder, 1)
	got := make(chan error, 1)
	go func() {
		st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive, Waiting: func(h []store.Holder) { waited <- h }})
		if err == nil {
			st.Close()
		}
		got <- err
	}()
	if h := <-waited; len(h) != 1 || h[0].PID != cmd.Process.Pid {
		t.Errorf("waiting on %v", h)
	}
	select {
	case err := <-got:
		t.Fatalf("exclusive lock taken while another process holds the store: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	stdin.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
