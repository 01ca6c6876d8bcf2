package main

import (
	"fmt"
	"path/filepath"
)

// scalePoint is one command's median peak RSS at a scale.
type scalePoint struct {
	entries int
	peakMiB float64
}

// scaleRows times image create, store fsck and image dump on a tree of n
// entries (mostly small files) next to mkcomposefs and composefs-info;
// the memory each entry adds is measured from the previous scale (prev,
// updated).
func scaleRows(cfsboot string, mk *chroot, n int, prev map[string]scalePoint) error {
	dir, err := tree(n)
	if err != nil {
		return err
	}
	img := filepath.Join(*cache, fmt.Sprintf("scale-%d.img", n))
	store := filepath.Join(*cache, fmt.Sprintf("scale-%d.store", n))
	// The store fsck checks (untimed to make).
	if err := emptyDir(store)(); err != nil {
		return err
	}
	if err := sh(cfsboot, "-q", "image", "create", dir, "--store", store, "-o", img); err != nil {
		return err
	}
	cmds := []Cmd{
		{Name: "create", Argv: []string{cfsboot, "-q", "image", "create", dir, "-o", img}},
		{Name: "fsck", Argv: []string{cfsboot, "-q", "store", "fsck", "--store", store}},
		{Name: "dump", Argv: []string{cfsboot, "-q", "image", "dump", img}},
	}
	if mk != nil {
		inside, err := mk.bind(dir)
		if err != nil {
			return err
		}
		defer mk.close()
		imgs, err := mk.bind(filepath.Dir(img))
		if err != nil {
			return err
		}
		inImg := filepath.Join(imgs, filepath.Base(img))
		cmds = append(cmds,
			Cmd{Name: "mkimage", Argv: mk.argv("mkcomposefs", inside, inImg+".mk")},
			Cmd{Name: "mkdump", Argv: mk.argv("composefs-info", "dump", inImg)})
	}
	got, err := measure(cmds)
	if err != nil {
		return err
	}
	g := fmt.Sprintf("scale: %d entries", n)
	add := func(name, what string, alts ...string) {
		ss, ok := got[name]
		if !ok {
			return
		}
		r := row(g, what, ss)
		r.USPerEntry = r.Seconds / float64(n) * 1e6
		if p, ok := prev[name]; ok && p.entries < n {
			r.KiBEntry = (r.PeakMiB - p.peakMiB) * 1024 / float64(n-p.entries)
		}
		prev[name] = scalePoint{n, r.PeakMiB}
		r.Vs = map[string]float64{}
		for _, a := range alts {
			if as, ok := got[a]; ok {
				r.Vs[alias[a]] = r.Seconds / median(as, wall)
			}
		}
		results.Rows = append(results.Rows, r)
	}
	add("create", fmt.Sprintf("%dk entries: cfsboot image create -o", n/1000), "mkimage")
	add("mkimage", fmt.Sprintf("%dk entries: mkcomposefs", n/1000))
	add("fsck", fmt.Sprintf("%dk entries: cfsboot store fsck", n/1000))
	add("dump", fmt.Sprintf("%dk entries: cfsboot image dump", n/1000), "mkdump")
	add("mkdump", fmt.Sprintf("%dk entries: composefs-info dump", n/1000))
	return nil
}
