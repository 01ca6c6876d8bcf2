// Package storetest holds the checks that the store's crash and
// concurrency tests share with the tests of the writers built on it.
package storetest

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cfsboot/gen/store"
)

// FsckClean fails the test unless a shared-lock fsck finds nothing.
func FsckClean(t testing.TB, dir string) {
	t.Helper()
	st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Shared})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	problems, err := st.Fsck()
	if err != nil || len(problems) != 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
}

// GCLoop runs gc on dir, again and again, until the stop it returns is
// called; stop reports how many runs there were and how many objects they
// removed in all.
func GCLoop(t testing.TB, dir string) (stop func() (runs, removed int)) {
	done := make(chan struct{})
	var runs, removed int // written by the loop, read after wg.Wait
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive})
			if err != nil {
				t.Error(err)
				return
			}
			r, _, err := st.GC(false)
			st.Close()
			if err != nil {
				t.Error(err)
				return
			}
			runs++
			removed += len(r)
		}
	}()
	return func() (int, int) { close(done); wg.Wait(); return runs, removed }
}

// CleanAfterKills checks what killed writers left in dir: repair finds
// nothing it cannot fix and removes only temporary files, then gc and
// fsck leave a clean store. It returns how many files repair removed.
func CleanAfterKills(t testing.TB, dir string) int {
	t.Helper()
	st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	removed, remaining, err := st.Repair()
	if err != nil || len(remaining) != 0 {
		t.Fatalf("repair: %v %v", remaining, err)
	}
	for _, p := range removed {
		if !strings.Contains(p, "/.tmp-") {
			t.Errorf("repair removed %s, which is no temporary file", p)
		}
	}
	if _, _, err := st.GC(false); err != nil {
		t.Fatal(err)
	}
	if problems, err := st.Fsck(); err != nil || len(problems) != 0 {
		t.Fatalf("fsck after gc: %v %v", problems, err)
	}
	return len(removed)
}

// KillAtRandom runs writers into the store dir and SIGKILLs each at a
// random moment of its run: the first runs to its end, which times a whole
// run, and each later one (up to maxRuns, for about six seconds) is killed
// after a random part of the latest whole run, so that the kills land
// anywhere inside runs however fast this machine is. start makes run i's
// writer (not started). After each kill fsck must find the store clean,
// and a writer that ends by itself must have succeeded; at the end
// CleanAfterKills checks what is left. The test fails if no writer was
// killed: it would prove nothing.
func KillAtRandom(t testing.TB, dir string, maxRuns int, start func(i int) *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(6 * time.Second)
	runs, killed := 0, 0
	var whole time.Duration
	for ; runs < maxRuns && time.Now().Before(deadline); runs++ {
		cmd := start(runs)
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if whole > 0 {
			time.Sleep(rand.N(whole))
			cmd.Process.Signal(syscall.SIGKILL)
		}
		if err := cmd.Wait(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != -1 {
				t.Fatalf("run %d: the writer failed by itself: %v", runs, err)
			}
			killed++
		} else {
			whole = time.Since(began)
		}
		if _, err := os.Stat(dir); err != nil {
			continue // killed before the store existed
		}
		FsckClean(t, dir)
	}
	removed := CleanAfterKills(t, dir)
	t.Logf("%d runs, %d killed, %d temporary files left", runs, killed, removed)
	if killed == 0 {
		t.Error("no writer was killed: the test proves nothing")
	}
}
