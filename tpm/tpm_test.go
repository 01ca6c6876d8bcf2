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
	m, err := newWithTPM(sim, MeasurerOptions{Policy: PolicyRequire, PCR: 15, ForcePhases: true, LogPath: logPath, Log: quietLog(t)}, false)
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
	if err := m.MeasureComposefs(d); err != nil {
		t.Fatal(err)
	}
	m.t = sim // LeaveInitrd closes the TPM; keep the test's handle usable
	if err := m.measure(PCR11, "leave-initrd", EventPhase); err != nil {
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
	// A writer that dies leaves the mark; the next one is told.
	l.f.Close()
	l2, err := OpenLog(path)
	if !errors.Is(err, ErrDirtyLog) || l2 == nil {
		t.Fatalf("reopening an interrupted log: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if dirty, _ := IsDirty(path); dirty {
		t.Fatal("dirty mark not cleared")
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
	if _, err := newWithTPM(failingTPM{}, o, false); err == nil || !strings.Contains(err.Error(), "failure mode") {
		t.Errorf("require with a failing TPM: %v", err)
	}
	o.Policy = PolicyAuto
	m, err := newWithTPM(failingTPM{}, o, false)
	if err != nil || m.t != nil {
		t.Fatalf("auto with a failing TPM must continue unmeasured: %v", err)
	}
	if err := m.MeasureComposefs(verity.Digest{}); err != nil {
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
	if got := PredictComposefs(d, mustBank("sha256")); !bytes.Equal(got, want15) {
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
