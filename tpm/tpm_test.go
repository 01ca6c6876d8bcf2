package tpm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"cfsboot/internal/efivar"
	"cfsboot/verity"
)

func openSim(t *testing.T) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("TPM simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func TestExtendReadEveryBank(t *testing.T) {
	sim := openSim(t)
	banks, err := ActiveBanks(sim)
	if err != nil || len(banks) == 0 {
		t.Fatalf("banks %v %v", banks, err)
	}
	before, err := Read(sim, 16, banks)
	if err != nil {
		t.Fatal(err)
	}
	digests := EventDigests(banks, []byte("hello"))
	if err := Extend(sim, 16, digests); err != nil {
		t.Fatal(err)
	}
	after, err := Read(sim, 16, banks)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range banks {
		h := b.Hash.New()
		h.Write(before[i].Value)
		ev := b.Hash.New()
		ev.Write([]byte("hello"))
		h.Write(ev.Sum(nil))
		if !bytes.Equal(after[i].Value, h.Sum(nil)) {
			t.Errorf("%s: PCR 16 is %x, expected %x", b.Name, after[i].Value, h.Sum(nil))
		}
	}
}

func quietLog(t *testing.T) func(string) { return func(s string) { t.Log(s) } }

// TestMeasurerAndLogReplay: the init's three events land in the PCRs and in
// a systemd-format log that replays to the TPM's values.
func TestMeasurerAndLogReplay(t *testing.T) {
	sim := openSim(t)
	logPath := filepath.Join(t.TempDir(), "run/log/systemd/tpm2-measure.log")
	m, err := newWithTPM(sim, MeasurerOptions{Policy: PolicyRequire, PCR: 15, ForcePhases: true, LogPath: logPath, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The simulator keeps state across tests: read PCR values first.
	banks := m.banks
	start11, _ := Read(sim, 11, banks)
	start15, _ := Read(sim, 15, banks)
	d := verity.ComputeBytes([]byte("image"))
	if err := m.EnterInitrd(); err != nil {
		t.Fatal(err)
	}
	if err := m.MeasureComposefs(d.Sum(), true); err != nil {
		t.Fatal(err)
	}
	if err := m.LeaveInitrd(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ParseLog(f)
	if err != nil || len(recs) != 3 {
		t.Fatalf("records %v %v", recs, err)
	}
	if dirty, _ := IsDirty(logPath); dirty {
		t.Error("log left dirty after a clean measurement")
	}
	st, _ := os.Stat(logPath)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v", st.Mode())
	}
	for i, b := range banks {
		for _, c := range []struct {
			pcr   int
			start []byte
		}{{11, start11[i].Value}, {15, start15[i].Value}} {
			replayed, err := replayFrom(recs, c.pcr, b, c.start)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := Read(sim, c.pcr, []Bank{b})
			if !bytes.Equal(replayed, now[0].Value) {
				t.Errorf("PCR %d %s: log replays to %x, TPM has %x", c.pcr, b.Name, replayed, now[0].Value)
			}
		}
	}
	// Golden record: field order and names as systemd writes them.
	raw, _ := os.ReadFile(logPath)
	first := strings.SplitN(string(raw), "\n", 2)[0]
	sum := sha256.Sum256([]byte("enter-initrd"))
	if !strings.HasPrefix(first, "\x1e{\"pcr\":11,\"digests\":[") || !strings.Contains(first, `{"hashAlg":"sha256","digest":"`+hex.EncodeToString(sum[:])+`"}`) ||
		!strings.Contains(first, `],"content_type":"systemd","content":{"string":"enter-initrd",`) || !strings.HasSuffix(first, `"eventType":"phase"}}`) {
		t.Errorf("record layout: %q", first)
	}
	if !strings.Contains(string(raw), `"string":"composefs:`+d.String()+`"`) || !strings.Contains(string(raw), `"eventType":"filesystem"`) {
		t.Errorf("composefs record: %s", raw)
	}
}

func TestReplayDetectsForgedRecord(t *testing.T) {
	b, _ := BankByName("sha256")
	rec := NewRecord(15, EventDigests([]Bank{b}, []byte("composefs:aa")), RecordContent{String: "composefs:bb", EventType: EventFilesystem})
	if _, err := Replay([]Record{rec}, 15, b); err == nil || !strings.Contains(err.Error(), "not the hash of its content") {
		t.Fatalf("forged record: %v", err)
	}
	rec = NewRecord(15, EventDigests([]Bank{b}, []byte("x")), RecordContent{String: "x"})
	if _, err := Replay([]Record{rec}, 15, mustBank("sha1")); err == nil || !strings.Contains(err.Error(), "no sha1 digest") {
		t.Fatalf("missing bank: %v", err)
	}
}

func mustBank(n string) Bank { b, _ := BankByName(n); return b }

func TestDirtyMarker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tpm2-measure.log")
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if dirty, _ := IsDirty(path); !dirty {
		t.Fatal("log not marked dirty while open")
	}
	// A writer that appended nothing (its extend failed, or may have
	// happened) leaves the mark.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if dirty, _ := IsDirty(path); !dirty {
		t.Fatal("dirty mark cleared although no record was appended")
	}
	// The next writer is told, and appending to a dirty log does not make
	// it clean: it still misses an event.
	l2, err := OpenLog(path)
	if !errors.Is(err, ErrDirtyLog) || l2 == nil {
		t.Fatalf("reopening an interrupted log: %v", err)
	}
	if err := l2.Append(Record{PCR: 15}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if dirty, _ := IsDirty(path); !dirty {
		t.Fatal("dirty mark cleared on a log that was dirty when opened")
	}
	// A clean log with a record appended is clean again.
	clean := filepath.Join(t.TempDir(), "clean.log")
	l3, err := OpenLog(clean)
	if err != nil {
		t.Fatal(err)
	}
	if err := l3.Append(Record{PCR: 15}); err != nil {
		t.Fatal(err)
	}
	if err := l3.Close(); err != nil {
		t.Fatal(err)
	}
	if dirty, _ := IsDirty(clean); dirty {
		t.Fatal("dirty mark not cleared after a complete append")
	}
	// Symlinks are not followed.
	link := filepath.Join(t.TempDir(), "link.log")
	os.Symlink(path, link)
	if _, err := OpenLog(link); err == nil {
		t.Fatal("opened a log through a symlink")
	}
}

// failingTPM rejects every command, like a TPM in failure mode.
type failingTPM struct{}

func (failingTPM) Send([]byte) ([]byte, error) { return nil, errors.New("TPM in failure mode") }
func (failingTPM) Close() error                { return nil }

func TestPolicies(t *testing.T) {
	o := MeasurerOptions{PCR: 15, Log: quietLog(t), LogPath: filepath.Join(t.TempDir(), "log")}
	o.Policy = PolicyRequire
	if _, err := newWithTPM(failingTPM{}, o); err == nil || !strings.Contains(err.Error(), "failure mode") {
		t.Errorf("require with a failing TPM: %v", err)
	}
	o.Policy = PolicyAuto
	m, err := newWithTPM(failingTPM{}, o)
	if err != nil || m.t != nil {
		t.Fatalf("auto with a failing TPM must continue unmeasured: %v", err)
	}
	if err := m.MeasureComposefs(verity.Digest{}.Sum(), true); err != nil {
		t.Fatal(err)
	}
	// No device at all (this host has no TPM driver).
	if _, err := os.Stat("/dev/tpm0"); err == nil {
		t.Skip("this machine has a TPM device; the no-TPM path is not reachable")
	}
	o.Policy = PolicyRequire
	if _, err := NewBootMeasurer(o); err == nil || !strings.Contains(err.Error(), "no TPM device") {
		t.Errorf("require without a TPM: %v", err)
	}
	o.Policy = PolicyAuto
	if m, err := NewBootMeasurer(o); err != nil || m.t != nil {
		t.Errorf("auto without a TPM: %v", err)
	}
}

// TestPredictions are checked against values computed here by hand.
func TestPredictions(t *testing.T) {
	sha := func(parts ...[]byte) []byte {
		h := sha256.New()
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	zero := make([]byte, 32)
	d := verity.ComputeBytes([]byte("root"))
	want15 := sha(zero, sha([]byte("composefs:"+d.String())))
	if got := PredictComposefs(d.Sum(), mustBank("sha256")); !bytes.Equal(got, want15) {
		t.Errorf("PCR 15: %x want %x", got, want15)
	}
	sections := map[string][]byte{".linux": []byte("kernel"), ".cmdline": []byte("composefs=x"), ".osrel": nil}
	v := zero
	for _, s := range []struct{ name, data string }{{".linux", "kernel"}, {".cmdline", "composefs=x"}} {
		v = sha(v, sha(append([]byte(s.name), 0)))
		v = sha(v, sha([]byte(s.data)))
	}
	v = sha(v, sha([]byte("enter-initrd")))
	enter := v
	v = sha(v, sha([]byte("leave-initrd")))
	preds := PredictPCR11(sections, []Bank{mustBank("sha256"), mustBank("sha1")})
	if preds[0].Path != "enter-initrd" || !bytes.Equal(preds[0].Value, enter) || preds[1].Path != "enter-initrd:leave-initrd" || !bytes.Equal(preds[1].Value, v) {
		t.Errorf("PCR 11: %+v", preds[:2])
	}
	if preds[4].Bank != "sha1" || len(preds[4].Value) != sha1.Size {
		t.Errorf("sha1 bank: %+v", preds[4])
	}
}

// fakeEFIVars is a directory laid out like efivarfs with the given
// variables (attributes, then value).
func fakeEFIVars(t *testing.T, names ...string) efivar.Vars {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte{6, 0, 0, 0, '1', 0}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return efivar.Vars{Dir: dir}
}

// TestStubDetection: the boot phases go to PCR 11 exactly when systemd-stub
// says it measured the UKI; a UEFI variable store that cannot be read fails
// under require and measures the phases under auto.
func TestStubDetection(t *testing.T) {
	stub := "StubPcrKernelImage-" + efivar.LoaderGUID
	unreadable := fakeEFIVars(t)
	os.Mkdir(filepath.Join(unreadable.Dir, stub), 0o755) // read fails with EISDIR
	for name, c := range map[string]struct {
		vars       efivar.Vars
		policy     string
		wantPhases bool
		wantErr    string
	}{
		"stub measured":      {fakeEFIVars(t, stub), PolicyRequire, true, ""},
		"no stub":            {fakeEFIVars(t), PolicyRequire, false, ""},
		"not UEFI":           {efivar.Vars{}, PolicyRequire, false, ""},
		"unreadable require": {unreadable, PolicyRequire, false, "cannot tell whether systemd-stub measured the UKI"},
		"unreadable auto":    {unreadable, PolicyAuto, true, ""},
	} {
		t.Run(name, func(t *testing.T) {
			sim := openSim(t)
			logPath := filepath.Join(t.TempDir(), "log")
			m, err := newWithTPM(sim, MeasurerOptions{Policy: c.policy, PCR: 15, LogPath: logPath, Log: quietLog(t), StubMeasured: c.vars.StubMeasuredKernel})
			if err != nil {
				t.Fatal(err)
			}
			err = m.EnterInitrd()
			if (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("EnterInitrd: %v, want %q", err, c.wantErr)
			}
			if m.phases != c.wantPhases {
				t.Fatalf("phases measured: %v, want %v", m.phases, c.wantPhases)
			}
			raw, _ := os.ReadFile(logPath)
			if strings.Contains(string(raw), `"enter-initrd"`) != c.wantPhases {
				t.Fatalf("log %q", raw)
			}
		})
	}
}

// TestDebugShellMeasured: the debug-shell event lands in PCR 11 and the
// composefs PCR and in the log, and a TPM that fails it is an error under
// every policy (the shell must then not start).
func TestDebugShellMeasured(t *testing.T) {
	sim := openSim(t)
	logPath := filepath.Join(t.TempDir(), "log")
	m, err := newWithTPM(sim, MeasurerOptions{Policy: PolicyAuto, PCR: 14, LogPath: logPath, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := mustBank("sha256")
	before11, _ := Read(sim, 11, []Bank{b})
	before14, _ := Read(sim, 14, []Bank{b})
	if err := m.DebugShell(); err != nil {
		t.Fatal(err)
	}
	ev := sha256.Sum256([]byte("debug-shell"))
	for pcr, before := range map[int][]byte{11: before11[0].Value, 14: before14[0].Value} {
		now, _ := Read(sim, pcr, []Bank{b})
		if want := ExtendValue(b, before, ev[:]); !bytes.Equal(now[0].Value, want) {
			t.Errorf("PCR %d: %x, want %x", pcr, now[0].Value, want)
		}
	}
	raw, _ := os.ReadFile(logPath)
	if strings.Count(string(raw), `"string":"debug-shell"`) != 2 {
		t.Errorf("log %q", raw)
	}
	for _, policy := range []string{PolicyAuto, PolicyRequire} {
		m := &BootMeasurer{opts: MeasurerOptions{Policy: policy, PCR: 15, LogPath: logPath, Log: quietLog(t)}, t: failingTPM{}, banks: []Bank{b}}
		if err := m.DebugShell(); err == nil || !strings.Contains(err.Error(), "failure mode") {
			t.Errorf("%s: debug shell measured on a failing TPM: %v", policy, err)
		}
	}
}

// TestTPMFailsAfterOpen: a TPM that worked when opened and fails later
// fails the boot under require, and under auto the boot goes on unmeasured.
func TestTPMFailsAfterOpen(t *testing.T) {
	for _, policy := range []string{PolicyRequire, PolicyAuto} {
		t.Run(policy, func(t *testing.T) { tpmFailsAfterOpen(t, policy) })
	}
}

func tpmFailsAfterOpen(t *testing.T, policy string) {
	sim := openSim(t)
	logPath := filepath.Join(t.TempDir(), "log")
	m, err := newWithTPM(sim, MeasurerOptions{Policy: policy, PCR: 15, ForcePhases: true, LogPath: logPath, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnterInitrd(); err != nil {
		t.Fatal(err)
	}
	m.t = failingTPM{}
	err = m.MeasureComposefs(verity.ComputeBytes([]byte("x")).Sum(), true)
	switch {
	case policy == PolicyRequire && (err == nil || !strings.Contains(err.Error(), "extending PCR 15") || !strings.Contains(err.Error(), "failure mode")):
		t.Errorf("require: %v", err)
	case policy == PolicyAuto && (err != nil || m.t != nil):
		t.Errorf("auto: %v, still measuring: %v", err, m.t != nil)
	}
	if dirty, _ := IsDirty(logPath); !dirty {
		t.Errorf("%s: log not left dirty after a failed extend", policy)
	}
}

// TestComposefsEventLengths: the event names the digest in hex, whose
// length tells the algorithm; an unverified boot is a different event.
func TestComposefsEventLengths(t *testing.T) {
	s512 := verity.SHA512.ComputeBytes([]byte("root"))
	if e := ComposefsEvent(s512); e != "composefs:"+s512.String() || len(e) != len("composefs:")+128 {
		t.Fatalf("%q", e)
	}
	if e := ComposefsEvent(verity.ComputeBytes(nil).Sum()); len(e) != len("composefs:")+64 {
		t.Fatalf("%q", e)
	}
	if e := ComposefsInsecureEvent(s512); e != "composefs-insecure:"+s512.String() {
		t.Fatalf("%q", e)
	}
	b := mustBank("sha256")
	want := ExtendValue(b, make([]byte, 32), EventDigests([]Bank{b}, []byte("composefs:"+s512.String()))[0].Value)
	if !bytes.Equal(PredictComposefs(s512, b), want) {
		t.Fatal("prediction of a SHA-512 digest's event")
	}
}
