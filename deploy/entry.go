// Package deploy manages deployments: each one an image in the store with a
// signed UKI on the ESP as a Boot Loader Specification Type #2 entry, which
// systemd-boot boots, counts and falls back from.
//
// Ordering, and why entry names carry a serial number: systemd-boot sorts
// entries with no tries left to the end, then (for entries whose .osrel
// sort keys and versions are equal) by entry id, newest version first, and
// picks the first entry matching loader.conf's `default` glob
// (src/boot/boot.c, boot_entry_compare and config_find_entry). An exact
// default would keep booting a deployment that failed all its tries; so
// loader.conf says `default <os>-*` once, at install, and the order is in
// the names: EFI/Linux/<os>-<serial>-<digest12>[+<left>[-<done>]].efi,
// highest serial first. Making a deployment the default is one rename to a
// new highest serial; a bad default sinks below the previous one by itself.
package deploy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// EntryDir is where Type #2 entries live on the ESP.
const EntryDir = "EFI/Linux"

// Entry is one of our boot loader entries.
type Entry struct {
	OS        string // os-release ID
	Serial    int    // ordering: the highest good one is the default
	Digest12  string // first 12 hex digits of the composefs digest
	TriesLeft int    // -1 without a counter: a blessed (or never counted) entry
	TriesDone int
}

var entryName = regexp.MustCompile(`^([a-z0-9._-]+)-([0-9]+)-([0-9a-f]{12})(?:\+([0-9]+)(?:-([0-9]+))?)?\.efi$`)

// ParseEntry reads an entry file name; names that are not ours are errors.
func ParseEntry(name string) (Entry, error) {
	m := entryName.FindStringSubmatch(strings.ToLower(name))
	if m == nil {
		return Entry{}, fmt.Errorf("%s: not a cfsboot entry name (<os>-<serial>-<digest12>[+left[-done]].efi)", name)
	}
	e := Entry{OS: m[1], Digest12: m[3], TriesLeft: -1}
	var err error
	if e.Serial, err = strconv.Atoi(m[2]); err != nil {
		return Entry{}, fmt.Errorf("%s: serial: %w", name, err)
	}
	if m[4] != "" {
		if e.TriesLeft, err = strconv.Atoi(m[4]); err != nil {
			return Entry{}, fmt.Errorf("%s: tries left: %w", name, err)
		}
		if m[5] != "" {
			if e.TriesDone, err = strconv.Atoi(m[5]); err != nil {
				return Entry{}, fmt.Errorf("%s: tries done: %w", name, err)
			}
		}
	}
	return e, nil
}

// ID is the entry's name without the counter, as systemd-boot names it in
// LoaderEntrySelected and matches it against loader.conf's default.
func (e Entry) ID() string { return fmt.Sprintf("%s-%d-%s.efi", e.OS, e.Serial, e.Digest12) }

// Name is the entry's file name in EntryDir.
func (e Entry) Name() string {
	switch {
	case e.TriesLeft < 0:
		return e.ID()
	case e.TriesDone == 0:
		return fmt.Sprintf("%s-%d-%s+%d.efi", e.OS, e.Serial, e.Digest12, e.TriesLeft)
	}
	return fmt.Sprintf("%s-%d-%s+%d-%d.efi", e.OS, e.Serial, e.Digest12, e.TriesLeft, e.TriesDone)
}

// Blessed reports whether the entry has no counter: systemd-bless-boot
// removed it after a good boot (or it was never counted).
func (e Entry) Blessed() bool { return e.TriesLeft < 0 }

// Bad reports whether the entry used up its tries without being blessed.
func (e Entry) Bad() bool { return e.TriesLeft == 0 }

// Sort orders entries as systemd-boot does for ours: bad ones last, then
// the highest serial first, then more tries left first.
func Sort(entries []Entry) {
	slices.SortStableFunc(entries, func(a, b Entry) int {
		if c := cmp.Compare(boolInt(a.Bad()), boolInt(b.Bad())); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Serial, a.Serial); c != 0 {
			return c
		}
		return cmp.Compare(b.TriesLeft, a.TriesLeft)
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
