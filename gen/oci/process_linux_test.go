package oci

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
)

// TestImportHelperProcess is the child of TestImportKilledAtRandomPoints,
// run from the test binary itself: "DIR LAYOUT" imports the layout's image
// into the store DIR and commits it.
func TestImportHelperProcess(t *testing.T) {
	args := strings.Fields(os.Getenv("OCI_TEST_IMPORT"))
	if len(args) != 2 {
		t.Skip("only a helper for TestImportKilledAtRandomPoints")
	}
	err := func() error {
		st, err := store.Open(args[0])
		if err != nil {
			return err
		}
		defer st.Close()
		img, done, err := Open("oci:"+args[1], SourceOptions{})
		if err != nil {
			return err
		}
		defer done()
		b := st.NewBatch()
		defer b.Abort()
		res, err := Import(img, Options{Sink: b})
		if err != nil {
			return err
		}
		_, _, err = b.Commit(res.Tree, erofs.DefaultOptions(), "")
		return err
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// An import killed at any point, its files being stored on several
// goroutines, leaves a store that fsck finds clean; what it leaves behind
// (temporary files, unreferenced objects) repair and gc remove.
func TestImportKilledAtRandomPoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	storetest.KillAtRandom(t, dir, 30, func(run int) *exec.Cmd {
		var ents []ent
		for j := range 60 {
			// Sizes across the chunk size, contents unique to the run.
			body := strings.Repeat(fmt.Sprintf("run %d file %d ", run, j), 1+rand.IntN(40000))
			ents = append(ents, file(fmt.Sprintf("d%d/f%d", j%5, j), body))
		}
		src := writeLayout(t, imageOfTars(t, tarOf(t, ents...)), "")
		cmd := exec.Command(os.Args[0], "-test.run=^TestImportHelperProcess$")
		cmd.Env = append(os.Environ(), "OCI_TEST_IMPORT="+dir+" "+src)
		cmd.Stderr = os.Stderr
		return cmd
	})
}
