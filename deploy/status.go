package deploy

import "cfsboot/verity"

// EntryStatus is one deployment as `cfsboot status` reports it.
type EntryStatus struct {
	ID        string `json:"id"`
	File      string `json:"file"`
	Digest    string `json:"digest,omitempty"` // "" when the image is not in the store
	Serial    int    `json:"serial"`
	TriesLeft *int   `json:"tries_left"` // null: blessed, no counter
	TriesDone int    `json:"tries_done"`
	Blessed   bool   `json:"blessed"`
	Bad       bool   `json:"bad"`
	Default   bool   `json:"default"`
	Rollback  bool   `json:"rollback"`
	Booted    bool   `json:"booted"`
}

// Status is the state of all deployments.
type Status struct {
	Booted        string        `json:"booted,omitempty"`       // composefs digest of the running root
	BootedEntry   string        `json:"booted_entry,omitempty"` // LoaderEntrySelected
	BootedBlessed bool          `json:"booted_blessed"`
	Default       string        `json:"default,omitempty"`  // entry id
	Rollback      string        `json:"rollback,omitempty"` // entry id
	Entries       []EntryStatus `json:"entries"`
}

// Booted is what the running system says about its boot; zero values when
// not booted through systemd-boot or not from composefs.
type Booted struct {
	Digest *verity.Digest
	Entry  string // LoaderEntrySelected: the entry id
}

type summary struct{ def, rollback int }

// summarize finds the default (the first good entry, or the first when all
// are bad, as systemd-boot picks) and the rollback (the next good one) in
// sorted entries; -1 when none.
func summarize(deps []Deployment) summary {
	s := summary{-1, -1}
	for i, d := range deps {
		if d.Bad() {
			continue
		}
		if s.def < 0 {
			s.def = i
		} else {
			s.rollback = i
			break
		}
	}
	if s.def < 0 && len(deps) > 0 {
		s.def = 0
	}
	return s
}

// Status reports every deployment, which is default, rollback and booted.
func (m *Manager) Status(b Booted) (Status, error) {
	deps, err := m.Entries()
	if err != nil {
		return Status{}, err
	}
	sum := summarize(deps)
	st := Status{BootedEntry: b.Entry, Entries: []EntryStatus{}}
	if b.Digest != nil {
		st.Booted = b.Digest.String()
	}
	for i, d := range deps {
		es := EntryStatus{ID: d.ID(), File: d.File, Serial: d.Serial, TriesDone: d.TriesDone,
			Blessed: d.Blessed(), Bad: d.Bad(), Default: i == sum.def, Rollback: i == sum.rollback}
		if !d.Blessed() {
			n := d.TriesLeft
			es.TriesLeft = &n
		}
		if d.Digest != nil {
			es.Digest = d.Digest.String()
		}
		switch {
		case b.Entry != "":
			es.Booted = b.Entry == d.ID()
		case b.Digest != nil && d.Digest != nil:
			es.Booted = *b.Digest == *d.Digest
		}
		if es.Booted {
			st.BootedBlessed = es.Blessed
		}
		if es.Default {
			st.Default = es.ID
		}
		if es.Rollback {
			st.Rollback = es.ID
		}
		st.Entries = append(st.Entries, es)
	}
	return st, nil
}
