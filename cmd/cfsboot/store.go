package main

import (
	"flag"
	"fmt"

	"cfsboot/gen/store"
)

func init() {
	register("store", "check and garbage-collect a composefs object store", func(args []string) error {
		return subcommands("store", map[string]func([]string) error{
			"fsck": storeFsck,
			"gc":   storeGC,
		}, args)
	})
}

func openStoreFlag(name string, args []string, dryRun *bool) (*store.Store, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	dir := fs.String("store", "", "the object store directory")
	if dryRun != nil {
		fs.BoolVar(dryRun, "dry-run", false, "only list what would be removed")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if *dir == "" || len(pos) != 0 {
		return nil, fmt.Errorf("usage: cfsboot %s --store DIR", name)
	}
	return store.Open(*dir)
}

func storeFsck(args []string) error {
	st, err := openStoreFlag("store fsck", args, nil)
	if err != nil {
		return err
	}
	problems, err := st.Fsck()
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s) in %s", len(problems), st.Dir())
	}
	fmt.Printf("%s: ok\n", st.Dir())
	return nil
}

func storeGC(args []string) error {
	var dryRun bool
	st, err := openStoreFlag("store gc", args, &dryRun)
	if err != nil {
		return err
	}
	removed, freed, err := st.GC(dryRun)
	for _, p := range removed {
		fmt.Println(p)
	}
	if err != nil {
		return err
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Printf("%s %d object(s), %d bytes\n", verb, len(removed), freed)
	return nil
}
