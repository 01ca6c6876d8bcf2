package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2/transport"

	"cfsboot/tpm"
	"cfsboot/uki"
	"cfsboot/verity"
)

func init() {
	register("pcr", "predict, read and check TPM PCR values", func(args []string) error {
		return subcommands("pcr", map[string]func([]string) error{
			"predict": pcrPredict,
			"read":    pcrRead,
			"log":     pcrLog,
		}, args)
	})
}

// pcrValue is one line of output: a PCR (after a phase path) in a bank.
type pcrValue struct {
	PCR   int    `json:"pcr"`
	Phase string `json:"phase,omitempty"`
	Bank  string `json:"bank"`
	Value string `json:"value"`
}

func printValues(vals []pcrValue, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(vals)
	}
	for _, v := range vals {
		label := strconv.Itoa(v.PCR)
		if v.Phase != "" {
			label += " " + v.Phase
		}
		fmt.Printf("%-43s %-7s %s\n", label, v.Bank, v.Value)
	}
	return nil
}

// sectionFlags collects repeated --section NAME=FILE.
type sectionFlags map[string]string

func (s sectionFlags) String() string { return "" }
func (s sectionFlags) Set(v string) error {
	name, file, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(name, ".") {
		return fmt.Errorf("want .NAME=FILE, got %q", v)
	}
	s[name] = file
	return nil
}

// parseList parses a comma-separated flag value item by item.
func parseList[T any](list string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, item := range strings.Split(list, ",") {
		v, err := parse(item)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseBanks(list string) ([]tpm.Bank, error) {
	return parseList(list, func(n string) (tpm.Bank, error) {
		b, ok := tpm.BankByName(n)
		if !ok {
			return b, fmt.Errorf("unknown bank %q (sha1, sha256, sha384, sha512)", n)
		}
		return b, nil
	})
}

// pcrPredict: --uki FILE | --section .NAME=FILE... (PCR 11 after each
// phase), or --composefs DIGEST (PCR 15 after our event, from zero).
func pcrPredict(args []string) error {
	fs := flag.NewFlagSet("pcr predict", flag.ContinueOnError)
	uki := fs.String("uki", "", "a unified kernel image: predict PCR 11")
	sections := sectionFlags{}
	fs.Var(sections, "section", "a UKI section as .NAME=FILE (repeatable), instead of --uki")
	composefs := fs.String("composefs", "", "a composefs digest: predict its PCR")
	pcr := fs.Int("pcr", tpm.PCR15, "the PCR the composefs digest is measured into (rd.cfsboot.pcr=)")
	bankList := fs.String("banks", "sha1,sha256", "banks to predict")
	asJSON := fs.Bool("json", false, "JSON output")
	if pos, err := parseInterspersed(fs, args); err != nil || len(pos) > 0 {
		return errors.New("usage: cfsboot pcr predict (--uki FILE | --section .NAME=FILE... | --composefs DIGEST [--pcr N]) [--banks sha1,sha256] [--json]")
	}
	banks, err := parseBanks(*bankList)
	if err != nil {
		return err
	}
	var vals []pcrValue
	switch {
	case *composefs != "":
		d, err := verity.ParseDigest(*composefs)
		if err != nil {
			return err
		}
		for _, b := range banks {
			vals = append(vals, pcrValue{PCR: *pcr, Bank: b.Name, Value: hex.EncodeToString(tpm.PredictComposefs(d, b))})
		}
	default:
		data := map[string][]byte{}
		if *uki != "" {
			f, err := os.Open(*uki)
			if err != nil {
				return err
			}
			defer f.Close()
			if data, err = uki.MeasuredSections(f); err != nil {
				return fmt.Errorf("%s: %w", *uki, err)
			}
		}
		for name, file := range sections {
			if data[name], err = os.ReadFile(file); err != nil {
				return err
			}
		}
		for _, p := range tpm.PredictPCR11(data, banks) {
			vals = append(vals, pcrValue{PCR: tpm.PCR11, Phase: p.Path, Bank: p.Bank, Value: hex.EncodeToString(p.Value)})
		}
	}
	return printValues(vals, *asJSON)
}

func parsePCRs(list string) ([]int, error) {
	return parseList(list, func(p string) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 23 {
			return 0, fmt.Errorf("bad PCR %q (0..23)", p)
		}
		return n, nil
	})
}

func pcrRead(args []string) error {
	fs := flag.NewFlagSet("pcr read", flag.ContinueOnError)
	pcrList := fs.String("pcr", "11,15", "PCRs to read")
	device := fs.String("device", "", "TPM device (default /dev/tpmrm0, then /dev/tpm0)")
	asJSON := fs.Bool("json", false, "JSON output")
	if pos, err := parseInterspersed(fs, args); err != nil || len(pos) > 0 {
		return errors.New("usage: cfsboot pcr read [--pcr 11,15] [--device PATH] [--json]")
	}
	pcrs, err := parsePCRs(*pcrList)
	if err != nil {
		return err
	}
	t, banks, err := openTPM(*device)
	if err != nil {
		return err
	}
	defer t.Close()
	var vals []pcrValue
	for _, pcr := range pcrs {
		ds, err := tpm.Read(t, pcr, banks)
		if err != nil {
			return err
		}
		for _, d := range ds {
			vals = append(vals, pcrValue{PCR: pcr, Bank: d.Bank.Name, Value: hex.EncodeToString(d.Value)})
		}
	}
	return printValues(vals, *asJSON)
}

// openTPM opens the TPM and finds its active banks.
func openTPM(device string) (transport.TPMCloser, []tpm.Bank, error) {
	t, err := tpm.OpenDevice(device)
	if err != nil {
		return nil, nil, err
	}
	banks, err := tpm.ActiveBanks(t)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, banks, nil
}

// logCheck is the verdict for one PCR and bank.
type logCheck struct {
	PCR      int    `json:"pcr"`
	Bank     string `json:"bank"`
	Events   int    `json:"events"`
	Replayed string `json:"replayed"`
	TPM      string `json:"tpm"`
	Match    bool   `json:"match"`
}

// pcrLog replays the measurement log and compares with the TPM.
func pcrLog(args []string) error {
	fs := flag.NewFlagSet("pcr log", flag.ContinueOnError)
	path := fs.String("log", tpm.LogPath, "the measurement log")
	device := fs.String("device", "", "TPM device (default /dev/tpmrm0, then /dev/tpm0)")
	asJSON := fs.Bool("json", false, "JSON output")
	if pos, err := parseInterspersed(fs, args); err != nil || len(pos) > 0 {
		return errors.New("usage: cfsboot pcr log [--log PATH] [--device PATH] [--json]")
	}
	f, err := os.Open(*path)
	if err != nil {
		return err
	}
	defer f.Close()
	records, err := tpm.ParseLog(f)
	if err != nil {
		return err
	}
	if dirty, _ := tpm.IsDirty(*path); dirty {
		fmt.Fprintf(os.Stderr, "warning: %s: %v\n", *path, tpm.ErrDirtyLog)
	}
	t, banks, err := openTPM(*device)
	if err != nil {
		return err
	}
	defer t.Close()
	counts := map[int]int{}
	for _, r := range records {
		counts[r.PCR]++
	}
	pcrs := make([]int, 0, len(counts))
	for p := range counts {
		pcrs = append(pcrs, p)
	}
	sort.Ints(pcrs)
	var checks []logCheck
	ok := true
	for _, pcr := range pcrs {
		now, err := tpm.Read(t, pcr, banks)
		if err != nil {
			return err
		}
		for i, b := range banks {
			replayed, err := tpm.Replay(records, pcr, b)
			if err != nil {
				return fmt.Errorf("%s: %w", *path, err)
			}
			c := logCheck{PCR: pcr, Bank: b.Name, Events: counts[pcr], Replayed: hex.EncodeToString(replayed), TPM: hex.EncodeToString(now[i].Value)}
			c.Match = c.Replayed == c.TPM
			ok = ok && c.Match
			checks = append(checks, c)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(checks); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			verdict := "matches the TPM"
			if !c.Match {
				verdict = "DOES NOT match the TPM (" + c.TPM + ")"
			}
			fmt.Printf("PCR %-2d %-7s %d event(s) replay to %s: %s\n", c.PCR, c.Bank, c.Events, c.Replayed, verdict)
		}
	}
	if !ok {
		return errors.New("the measurement log does not account for the PCR values: events are missing or forged (for PCR 11 on a UKI boot, the stub's events are in the firmware log, not this one)")
	}
	return nil
}
