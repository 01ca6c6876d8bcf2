package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"cfsboot/verity"
)

// DefaultTries is the boot counter a new deployment starts with.
const DefaultTries = 3

// Images is what deployments need from the object store.
type Images interface {
	// Add imports the image named by ref (sealing what it adds) and
	// returns its composefs digest.
	Add(ctx context.Context, ref string) (verity.Digest, error)
	// List returns the digests of the images in the store.
	List() ([]verity.Digest, error)
	// Remove removes an image (not its objects).
	Remove(d verity.Digest) error
	// GC removes the objects no image references.
	GC() error
}

// BuildUKI builds the signed UKI that boots digest d with cmdline
// (which already holds composefs=<d>) into the host file out.
type BuildUKI func(ctx context.Context, d verity.Digest, cmdline, out string) error

// Manager deploys, rolls back and reports deployments of one system.
type Manager struct {
	ESP    ESP
	OS     string // os-release ID: entry names and the default glob
	Images Images
	UKI    BuildUKI
	// Cmdline is the kernel command line of every deployment besides its
	// composefs= word (root=PARTUUID=..., console=, ...).
	Cmdline string
	// StateDir holds state/deploy/<digest> (the root filesystem's state
	// directory); "" when the caller keeps no per-deployment state.
	StateDir string
	Tries    int // 0: DefaultTries
	// Booted is the digest of the running deployment (never removed).
	Booted *verity.Digest
	// Log reports progress; nil for none.
	Log func(format string, args ...any)
}

// Deployment is an entry together with the image it boots.
type Deployment struct {
	Entry
	File   string         // file name in EntryDir
	Digest *verity.Digest // nil when no image in the store has Digest12
}

// Entries reads our entries on the ESP in systemd-boot's order (the
// default first). Files that are not ours are left out.
func (m *Manager) Entries() ([]Deployment, error) {
	names, err := m.ESP.List(EntryDir)
	if err != nil {
		return nil, err
	}
	var digests []verity.Digest
	if m.Images != nil {
		if digests, err = m.Images.List(); err != nil {
			return nil, err
		}
	}
	var entries []Entry
	files := map[string]string{}
	for _, n := range names {
		e, err := ParseEntry(n)
		if err != nil || e.OS != m.OS {
			continue
		}
		entries = append(entries, e)
		files[e.ID()] = n
	}
	Sort(entries)
	deps := make([]Deployment, len(entries))
	for i, e := range entries {
		deps[i] = Deployment{Entry: e, File: files[e.ID()]}
		for _, d := range digests {
			if strings.HasPrefix(d.String(), e.Digest12) {
				deps[i].Digest = &d
				break
			}
		}
	}
	return deps, nil
}

func (m *Manager) logf(format string, args ...any) {
	if m.Log != nil {
		m.Log(format, args...)
	}
}

func (m *Manager) tries() int {
	if m.Tries > 0 {
		return m.Tries
	}
	return DefaultTries
}

func nextSerial(deps []Deployment) int {
	n := 0
	for _, d := range deps {
		n = max(n, d.Serial)
	}
	return n + 1
}

// Deploy adds the image ref to the store, writes its UKI with a fresh boot
// counter as the new default (one rename), and keeps the keep newest
// deployments (and the booted one). The previous default stays as the
// rollback entry.
func (m *Manager) Deploy(ctx context.Context, ref string, keep int) (Deployment, error) {
	if m.Images == nil || m.UKI == nil {
		return Deployment{}, errors.New("deploy: the Manager needs Images and UKI")
	}
	if keep < 1 {
		return Deployment{}, fmt.Errorf("deploy: keep %d: at least 1 deployment must stay", keep)
	}
	m.logf("adding %s to the store", ref)
	d, err := m.Images.Add(ctx, ref)
	if err != nil {
		return Deployment{}, fmt.Errorf("deploy %s: %w", ref, err)
	}
	deps, err := m.Entries()
	if err != nil {
		return Deployment{}, err
	}
	next := Entry{OS: m.OS, Serial: nextSerial(deps), Digest12: d.String()[:12], TriesLeft: m.tries()}
	if old := findDigest(deps, d); old != nil {
		// Already deployed: the same UKI becomes the default again, counted afresh.
		m.logf("%s is deployed as %s; making it the default", d, old.File)
		if err := m.ESP.Rename(path.Join(EntryDir, old.File), path.Join(EntryDir, next.Name())); err != nil {
			return Deployment{}, err
		}
	} else {
		if err := m.writeUKI(ctx, d, next); err != nil {
			return Deployment{}, err
		}
	}
	made := Deployment{Entry: next, File: next.Name(), Digest: &d}
	m.logf("deployed %s as %s/%s (default, %d tries)", d, EntryDir, next.Name(), next.TriesLeft)
	if err := m.Prune(keep); err != nil {
		return made, err
	}
	return made, nil
}

func findDigest(deps []Deployment, d verity.Digest) *Deployment {
	for i := range deps {
		if deps[i].Digest != nil && *deps[i].Digest == d {
			return &deps[i]
		}
	}
	return nil
}

// writeUKI builds the UKI on the host and puts it on the ESP under its
// final name; the rename inside Put is what makes it the default.
func (m *Manager) writeUKI(ctx context.Context, d verity.Digest, e Entry) error {
	tmp, err := os.CreateTemp("", "cfsboot-uki-*.efi")
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmdline := strings.TrimSpace("composefs=" + d.String() + " " + m.Cmdline)
	m.logf("building the UKI for %s", d)
	if err := m.UKI(ctx, d, cmdline, tmp.Name()); err != nil {
		return fmt.Errorf("deploy: uki for %s: %w", d, err)
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	defer f.Close()
	if err := m.ESP.MkdirAll(EntryDir); err != nil {
		return err
	}
	return m.ESP.Put(path.Join(EntryDir, e.Name()), f)
}

// Rollback makes the rollback deployment (the next good one after the
// default) the default, by renaming it to a new highest serial. Its boot
// counter is kept.
func (m *Manager) Rollback() (Deployment, error) {
	deps, err := m.Entries()
	if err != nil {
		return Deployment{}, err
	}
	st := summarize(deps)
	if st.rollback < 0 {
		return Deployment{}, fmt.Errorf("rollback: no deployment to roll back to (%d entr%s of %s in %s)", len(deps), plural(len(deps), "y", "ies"), m.OS, EntryDir)
	}
	target := deps[st.rollback]
	e := target.Entry
	e.Serial = nextSerial(deps)
	if err := m.ESP.Rename(path.Join(EntryDir, target.File), path.Join(EntryDir, e.Name())); err != nil {
		return Deployment{}, err
	}
	m.logf("%s is the default now (was %s)", e.Name(), target.File)
	return Deployment{Entry: e, File: e.Name(), Digest: target.Digest}, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Prune keeps the keep newest deployments (highest serials) that can still
// boot, then bad ones (tries used up, which systemd-boot never picks
// again), and the booted one; it removes the others: the UKI first (so no
// entry ever points at a removed image), then the state directory and the
// image, then the objects no image references. Preferring good entries
// keeps the last deployment that booted when newer ones failed.
func (m *Manager) Prune(keep int) error {
	deps, err := m.Entries()
	if err != nil {
		return err
	}
	// Good before bad, newest first: the first keep stay.
	slices.SortStableFunc(deps, func(a, b Deployment) int {
		if c := cmp.Compare(boolInt(a.Bad()), boolInt(b.Bad())); c != 0 {
			return c
		}
		return cmp.Compare(b.Serial, a.Serial)
	})
	removed := 0
	for i, dep := range deps {
		if i < keep || (m.Booted != nil && dep.Digest != nil && *dep.Digest == *m.Booted) {
			continue
		}
		m.logf("removing deployment %s", dep.File)
		if err := m.ESP.Remove(path.Join(EntryDir, dep.File)); err != nil {
			return err
		}
		if dep.Digest == nil {
			continue
		}
		if m.StateDir != "" {
			if err := os.RemoveAll(filepath.Join(m.StateDir, "deploy", dep.Digest.String())); err != nil {
				return fmt.Errorf("prune: state of %s: %w", dep.File, err)
			}
		}
		if err := m.Images.Remove(*dep.Digest); err != nil {
			return fmt.Errorf("prune: image of %s: %w", dep.File, err)
		}
		removed++
	}
	if removed > 0 {
		if err := m.Images.GC(); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return nil
}

// CarriedCmdline is the part of a running kernel's command line a new
// deployment keeps: everything but the digest of the running image and
// what the boot loader adds (BOOT_IMAGE=, initrd=).
func CarriedCmdline(cmdline string) string {
	var keep []string
	for _, w := range strings.Fields(cmdline) {
		key, _, _ := strings.Cut(w, "=")
		switch key {
		case "composefs", "composefs.digest", "BOOT_IMAGE", "initrd":
			continue
		}
		keep = append(keep, w)
	}
	return strings.Join(keep, " ")
}
