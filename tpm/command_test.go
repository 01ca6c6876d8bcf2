package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// TestCommandsAgainstGoTPM: our encoder and go-tpm (the oracle) see the
// same TPM the same way: the same banks, and each reads what the other
// extended.
func TestCommandsAgainstGoTPM(t *testing.T) {
	sim := openSim(t)
	banks, err := ActiveBanks(sim)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(sim)
	if err != nil {
		t.Fatal(err)
	}
	assigned, _ := caps.CapabilityData.Data.AssignedPCR()
	var theirs []uint16
	for _, s := range assigned.PCRSelections {
		if anySet(s.PCRSelect) {
			theirs = append(theirs, uint16(s.Hash))
		}
	}
	if len(theirs) != len(banks) {
		t.Fatalf("banks: ours %v, go-tpm %v", banks, theirs)
	}
	for i, b := range banks {
		if uint16(b.Alg) != theirs[i] {
			t.Fatalf("bank %d: ours %#x, go-tpm %#x", i, b.Alg, theirs[i])
		}
	}
	goRead := func(pcr int, b Bank) []byte {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMIAlgHash(b.Alg), PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr))},
		}}}.Execute(sim)
		if err != nil || len(rsp.PCRValues.Digests) != 1 {
			t.Fatalf("go-tpm PCR_Read: %v", err)
		}
		return rsp.PCRValues.Digests[0].Buffer
	}
	// Ours extends, go-tpm reads.
	before, err := Read(sim, 23, banks)
	if err != nil {
		t.Fatal(err)
	}
	if err := Extend(sim, 23, EventDigests(banks, []byte("ours"))); err != nil {
		t.Fatal(err)
	}
	for i, b := range banks {
		ev := EventDigests([]Bank{b}, []byte("ours"))[0].Value
		if got, want := goRead(23, b), ExtendValue(b, before[i].Value, ev); !bytes.Equal(got, want) {
			t.Errorf("%s: go-tpm reads %x after our extend, want %x", b.Name, got, want)
		}
	}
	// go-tpm extends, ours reads.
	var vals tpm2.TPMLDigestValues
	for _, d := range EventDigests(banks, []byte("theirs")) {
		vals.Digests = append(vals.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(d.Bank.Alg), Digest: d.Value})
	}
	if _, err := (tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: 23, Auth: tpm2.PasswordAuth(nil)}, Digests: vals}).Execute(sim); err != nil {
		t.Fatal(err)
	}
	ours, err := Read(sim, 23, banks)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range banks {
		if want := goRead(23, b); !bytes.Equal(ours[i].Value, want) {
			t.Errorf("%s: we read %x, go-tpm %x", b.Name, ours[i].Value, want)
		}
	}
}

// TestCommandBytesMatchGoTPM: PCR_Read and GetCapability commands are the
// bytes go-tpm sends.
func TestCommandBytesMatchGoTPM(t *testing.T) {
	sim := openSim(t)
	ours, theirs := &recorder{t: sim}, &recorder{t: sim}
	pcrRead(ours, 7, AlgSHA256)
	tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(7)},
	}}}.Execute(theirs)
	getPCRAllocation(ours)
	tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(theirs)
	if len(ours.sent) != 2 || len(theirs.sent) != 2 {
		t.Fatalf("sent %d and %d commands", len(ours.sent), len(theirs.sent))
	}
	for i := range ours.sent {
		if !bytes.Equal(ours.sent[i], theirs.sent[i]) {
			t.Errorf("command %d: ours %x, go-tpm %x", i, ours.sent[i], theirs.sent[i])
		}
	}
}

type recorder struct {
	t    transport.TPM
	sent [][]byte
}

func (r *recorder) Send(cmd []byte) ([]byte, error) {
	r.sent = append(r.sent, append([]byte{}, cmd...))
	return r.t.Send(cmd)
}

// canned answers every command with one response.
type canned []byte

func (c canned) Send([]byte) ([]byte, error) { return c, nil }

func response(tag uint16, rc uint32, params []byte) canned {
	b := binary.BigEndian.AppendUint16(nil, tag)
	b = binary.BigEndian.AppendUint32(b, uint32(10+len(params)))
	b = binary.BigEndian.AppendUint32(b, rc)
	return append(b, params...)
}

func TestResponseErrors(t *testing.T) {
	sum := sha256.Sum256(nil)
	for name, c := range map[string]struct {
		rsp  canned
		want string
	}{
		"failure mode":   {response(tagNoSessions, 0x101, nil), "TPM_RC_FAILURE"},
		"short":          {canned{0x80, 0x01, 0, 0}, "shorter than its header"},
		"size mismatch":  {append(response(tagNoSessions, 0, nil), 0), "response says 10 bytes, got 11"},
		"truncated body": {response(tagNoSessions, 0, []byte{0, 0, 0, 1}), "truncated"},
		"two values": {response(tagNoSessions, 0, append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2},
			append(append([]byte{0, 32}, sum[:]...), append([]byte{0, 32}, sum[:]...)...)...)), "2 values for one PCR"},
	} {
		if _, err := pcrRead(c.rsp, 0, AlgSHA256); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := getPCRAllocation(response(tagNoSessions, 0, []byte{0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff})); err == nil || !strings.Contains(err.Error(), "PCR banks") {
		t.Errorf("absurd bank count: %v", err)
	}
}

// FuzzResponses: no response from a TPM (or a device pretending to be
// one) makes the decoders panic.
func FuzzResponses(f *testing.F) {
	sum := sha256.Sum256(nil)
	f.Add([]byte(response(tagNoSessions, 0, append([]byte{0, 0, 0, 5, 0, 0, 0, 1, 0, 0x0b, 3, 0, 0, 1, 0, 0, 0, 1, 0, 32}, sum[:]...))))
	f.Add([]byte(response(tagNoSessions, 0, []byte{1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 4, 3, 0xff, 0xff, 0xff, 0, 0x0b, 3, 0xff, 0xff, 0xff})))
	f.Add([]byte(response(tagSessions, 0, []byte{0, 0, 0, 0, 0, 0, 1, 0, 0})))
	f.Fuzz(func(t *testing.T, rsp []byte) {
		pcrRead(canned(rsp), 1, AlgSHA256)
		getPCRAllocation(canned(rsp))
		pcrExtend(canned(rsp), 1, nil)
		ActiveBanks(canned(rsp))
	})
}
