//go:build qemu

package qemutests

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"cfsboot/tpm"
	"cfsboot/verity"
)

type pcrLine struct {
	PCR   int    `json:"pcr"`
	Bank  string `json:"bank"`
	Value string `json:"value"`
}

// measuredBoot boots digest with a software TPM and returns what the
// booted system's `cfsboot pcr read` reported.
func measuredBoot(t *testing.T, digest verity.Digest) []pcrLine {
	t.Helper()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: fx.Disk(t, "sealed"), TPM: true,
		Append: cmdline(digest.String(), "rd.cfsboot.tpm=require", "rd.cfsboot.measure-phases=1")})
	vm.WaitFor(`cfsboot: measured "composefs:` + digest.String() + `" into PCR 15`)
	vm.WaitFor(`TESTINIT measure log: yes`)
	line := vm.WaitFor(`TESTINIT pcr read: `)
	vm.WaitFor(`TESTINIT pcr read status: ok`)
	logLine := vm.WaitFor(`TESTINIT pcr log: `)
	vm.WaitFor(`TESTINIT pcr log status: ok`)
	vm.WaitExit()
	var vals []pcrLine
	if err := json.Unmarshal([]byte(line[strings.Index(line, "["):]), &vals); err != nil || len(vals) == 0 {
		t.Fatalf("pcr read output %q: %v", line, err)
	}
	if !strings.Contains(logLine, `"match":true`) || strings.Contains(logLine, `"match":false`) {
		t.Errorf("the booted system's measurement log does not replay to its PCRs: %s", logLine)
	}
	return vals
}

// TestMeasuredBoot: PCR 11 and 15 in the booted system equal
// `cfsboot pcr predict` for that boot (a direct kernel boot: no firmware or
// stub measured PCR 11 before the initrd), and the log in /run replays to
// them; another image gives another PCR 15.
func TestMeasuredBoot(t *testing.T) {
	t.Parallel()
	vals := measuredBoot(t, fx.Digest)
	for _, v := range vals {
		b, ok := tpm.BankByName(v.Bank)
		if !ok {
			t.Fatalf("unknown bank %s", v.Bank)
		}
		var want []byte
		switch v.PCR {
		case 11:
			for _, p := range tpm.PredictPCR11(nil, []tpm.Bank{b}) {
				if p.Path == "enter-initrd:leave-initrd" {
					want = p.Value
				}
			}
		case 15:
			want = tpm.PredictComposefs(fx.Digest.Sum(), b)
		}
		if v.Value != hex.EncodeToString(want) {
			t.Errorf("PCR %d %s = %s, predicted %x", v.PCR, v.Bank, v.Value, want)
		}
	}
	other := measuredBoot(t, fx.OtherDigest)
	for i, v := range other {
		if v.PCR == 15 && v.Value == vals[i].Value {
			t.Errorf("a different image left the same PCR 15 (%s)", v.Value)
		}
		if b, _ := tpm.BankByName(v.Bank); v.PCR == 15 && v.Value != hex.EncodeToString(tpm.PredictComposefs(fx.OtherDigest.Sum(), b)) {
			t.Errorf("PCR 15 %s after the other image: %s", v.Bank, v.Value)
		}
	}
}

func TestRequiredTPMMissing(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), Append: cmdline(fx.Digest.String(), "rd.cfsboot.tpm=require")})
	expectFailure(t, vm, "tpm", "rd.cfsboot.tpm=require: no TPM device")
}
