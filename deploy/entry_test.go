package deploy

import (
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	for _, c := range []struct {
		name    string
		want    Entry
		id      string
		blessed bool
		bad     bool
	}{
		{"debian-1-0123456789ab+3.efi", Entry{"debian", 1, "0123456789ab", 3, 0}, "debian-1-0123456789ab.efi", false, false},
		{"debian-12-0123456789ab+2-1.efi", Entry{"debian", 12, "0123456789ab", 2, 1}, "debian-12-0123456789ab.efi", false, false},
		{"debian-3-0123456789ab+0-3.efi", Entry{"debian", 3, "0123456789ab", 0, 3}, "debian-3-0123456789ab.efi", false, true},
		{"debian-3-0123456789ab.efi", Entry{"debian", 3, "0123456789ab", -1, 0}, "debian-3-0123456789ab.efi", true, false},
		{"fedora-coreos-7-0123456789ab+1.efi", Entry{"fedora-coreos", 7, "0123456789ab", 1, 0}, "fedora-coreos-7-0123456789ab.efi", false, false},
		// FAT is case-insensitive and firmware may hand names back in upper case.
		{"DEBIAN-1-0123456789AB+3.EFI", Entry{"debian", 1, "0123456789ab", 3, 0}, "debian-1-0123456789ab.efi", false, false},
	} {
		e, err := ParseEntry(c.name)
		if err != nil {
			t.Errorf("ParseEntry(%s): %v", c.name, err)
			continue
		}
		if e != c.want || e.ID() != c.id || e.Blessed() != c.blessed || e.Bad() != c.bad {
			t.Errorf("ParseEntry(%s) = %+v id %s blessed %v bad %v", c.name, e, e.ID(), e.Blessed(), e.Bad())
		}
		back, err := ParseEntry(e.Name())
		if err != nil || back != e {
			t.Errorf("Name() %s does not parse back to %+v: %+v %v", e.Name(), e, back, err)
		}
	}
	for _, bad := range []string{
		"debian-0123456789ab+3.efi",     // no serial
		"debian-1-0123456789a+3.efi",    // 11 hex digits
		"debian-1-0123456789ab+3.conf",  // Type #1
		"debian-1-0123456789ab+3-x.efi", // junk counter
		"debian-1-0123456789ab+3+1.efi", // two counters
		"-1-0123456789ab.efi",           // no os
		"systemd-bootx64.efi",
		".debian-1-0123456789ab+3.efi.tmp", // a Put in progress
	} {
		if e, err := ParseEntry(bad); err == nil {
			t.Errorf("ParseEntry(%s) accepted: %+v", bad, e)
		}
	}
}

// The counter series systemd-boot's boot_entry_parse_tries documents:
// foobar+3 → +2-1 → +1-2 → +0-3.
func TestCounterSeries(t *testing.T) {
	e := Entry{OS: "debian", Serial: 1, Digest12: "0123456789ab", TriesLeft: 3}
	want := []string{"debian-1-0123456789ab+3.efi", "debian-1-0123456789ab+2-1.efi", "debian-1-0123456789ab+1-2.efi", "debian-1-0123456789ab+0-3.efi"}
	for i, w := range want {
		if e.Name() != w {
			t.Errorf("step %d: %s, want %s", i, e.Name(), w)
		}
		e.TriesLeft, e.TriesDone = e.TriesLeft-1, e.TriesDone+1
	}
}

func TestSortAndSummary(t *testing.T) {
	parse := func(names ...string) []Deployment {
		var es []Entry
		for _, n := range names {
			e, err := ParseEntry(n)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, e)
		}
		Sort(es)
		deps := make([]Deployment, len(es))
		for i, e := range es {
			deps[i] = Deployment{Entry: e, File: e.Name()}
		}
		return deps
	}
	// The scenario: C and D failed all their tries, B and A are good.
	deps := parse("os-1-aaaaaaaaaaaa.efi", "os-4-dddddddddddd+0-3.efi", "os-2-bbbbbbbbbbbb.efi", "os-3-cccccccccccc+0-3.efi")
	got := []string{}
	for _, d := range deps {
		got = append(got, d.Digest12[:1])
	}
	if s := summarize(deps); got[0] != "b" || got[1] != "a" || s.def != 0 || s.rollback != 1 {
		t.Errorf("order %v, summary %+v; want b, a first (bad ones last), default b, rollback a", got, s)
	}
	// A fresh deployment with tries left is the default; the blessed one before it the rollback.
	deps = parse("os-1-aaaaaaaaaaaa.efi", "os-2-bbbbbbbbbbbb+2-1.efi")
	if s := summarize(deps); deps[s.def].Digest12[0] != 'b' || deps[s.rollback].Digest12[0] != 'a' {
		t.Errorf("summary %+v of %v", s, deps)
	}
	// All bad: systemd-boot still boots the first.
	deps = parse("os-1-aaaaaaaaaaaa+0-3.efi", "os-2-bbbbbbbbbbbb+0-3.efi")
	if s := summarize(deps); s.def != 0 || s.rollback != -1 || deps[0].Serial != 2 {
		t.Errorf("all bad: summary %+v of %v", s, deps)
	}
}

func TestLoaderConf(t *testing.T) {
	def, timeout := ParseLoaderConf(LoaderConfig("debian", 3))
	if def != "debian-*" || timeout != 3 {
		t.Errorf("ParseLoaderConf(LoaderConfig) = %q %d", def, timeout)
	}
	def, timeout = ParseLoaderConf([]byte("timeout  5\ndefault\tfoo*\n#default x\n"))
	if def != "foo*" || timeout != 5 {
		t.Errorf("ParseLoaderConf = %q %d", def, timeout)
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"debian-1-0123456789ab+3.efi", "debian-12-0123456789ab+2-1.efi", "x-1-0123456789ab.efi", "a-b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		e, err := ParseEntry(name)
		if err != nil {
			return
		}
		back, err := ParseEntry(e.Name())
		if err != nil || back != e {
			t.Fatalf("%q parsed to %+v, whose name %q parses to %+v (%v)", name, e, e.Name(), back, err)
		}
	})
}

func FuzzParseLoaderConf(f *testing.F) {
	f.Add([]byte("default debian-*\ntimeout 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) { ParseLoaderConf(data) })
}

func TestOSFromESP(t *testing.T) {
	esp := DirESP(t.TempDir())
	if _, err := OSFromESP(esp); err == nil {
		t.Error("an ESP without loader.conf was accepted")
	}
	esp.MkdirAll("loader")
	esp.Put(LoaderConf, strings.NewReader(string(LoaderConfig("fedora-coreos", 0))))
	if os, err := OSFromESP(esp); err != nil || os != "fedora-coreos" {
		t.Errorf("OSFromESP = %q, %v", os, err)
	}
	esp.Put(LoaderConf, strings.NewReader("default debian-3-0123456789ab.efi\n"))
	if _, err := OSFromESP(esp); err == nil {
		t.Error("an exact default was accepted: it would pin a failing entry")
	}
}
