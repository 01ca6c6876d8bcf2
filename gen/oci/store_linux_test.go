package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
)

// TestImportDuringGCAndCreate: OCI imports and directory creates fill one
// store while gc runs in a loop; every commit succeeds, gc removes nothing
// an image needs, and fsck stays clean (the store's lock protocol).
func TestImportDuringGCAndCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	stop := storetest.GCLoop(t, dir)
	for i := range 8 {
		// The same file contents in both: the two writers share objects.
		var ents []ent
		for j := range 20 {
			ents = append(ents, file(fmt.Sprintf("f%d", j), strings.Repeat(fmt.Sprintf("%d-%d ", i, j), 40)))
		}
		img := imageOfTars(t, tarOf(t, ents...))
		src := filepath.Join(t.TempDir(), "src")
		os.MkdirAll(src, 0o755)
		for j, e := range ents {
			os.WriteFile(filepath.Join(src, fmt.Sprintf("g%d", j)), []byte(e.body), 0o644)
		}
		var iwg sync.WaitGroup
		errs := make([]error, 2)
		iwg.Add(2)
		go func() {
			defer iwg.Done()
			st, err := store.Open(dir)
			if err != nil {
				errs[0] = err
				return
			}
			defer st.Close()
			b := st.NewBatch()
			defer b.Abort()
			res, err := Import(img, Options{Sink: b})
			if err == nil {
				_, _, err = b.Commit(res.Tree, erofs.DefaultOptions(), fmt.Sprintf("oci%d", i))
			}
			errs[0] = err
		}()
		go func() {
			defer iwg.Done()
			st, err := store.Open(dir)
			if err != nil {
				errs[1] = err
				return
			}
			defer st.Close()
			root, err := source.Walk(src, source.Options{})
			if err == nil {
				_, _, err = st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions()})
			}
			errs[1] = err
		}()
		iwg.Wait()
		if errs[0] != nil || errs[1] != nil {
			stop()
			t.Fatalf("round %d: import %v, create %v", i, errs[0], errs[1])
		}
		storetest.FsckClean(t, dir)
	}
	runs, _ := stop()
	t.Logf("%d gc runs during the imports", runs)
}
