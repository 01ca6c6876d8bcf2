package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/spf13/cobra"

	"cfsboot/tpm"
	"cfsboot/uki"
	"cfsboot/verity"
)

func newPCRCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pcr", Short: "Predict, read and check TPM PCR values"}
	cmd.AddCommand(newPCRPredictCmd(), newPCRReadCmd(), newPCRLogCmd())
	return cmd
}

// pcrValue is one PCR (after a phase path) in a bank: the JSON schema of
// `pcr predict --json` and `pcr read --json` is a list of them.
type pcrValue struct {
	PCR   int    `json:"pcr"`
	Phase string `json:"phase,omitempty"`
	Bank  string `json:"bank"`
	Value string `json:"value"`
}

func printValues(cmd *cobra.Command, vals []pcrValue, asJSON bool) error {
	if asJSON {
		return printJSON(cmd, vals)
	}
	for _, v := range vals {
		label := strconv.Itoa(v.PCR)
		if v.Phase != "" {
			label += " " + v.Phase
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%-43s %-7s %s\n", label, v.Bank, v.Value)
	}
	return nil
}

// parseList parses a comma-separated flag value item by item.
func parseList[T any](flag string, list []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, item := range list {
		v, err := parse(item)
		if err != nil {
			return nil, usageErrorf("--%s: %w", flag, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseBanks(list []string) ([]tpm.Bank, error) {
	return parseList("banks", list, func(n string) (tpm.Bank, error) {
		b, ok := tpm.BankByName(n)
		if !ok {
			return b, fmt.Errorf("unknown bank %q (sha1, sha256, sha384, sha512)", n)
		}
		return b, nil
	})
}

func parsePCRs(list []string) ([]int, error) {
	return parseList("pcr", list, func(p string) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 23 {
			return 0, fmt.Errorf("bad PCR %q (0..23)", p)
		}
		return n, nil
	})
}

func newPCRPredictCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "predict (--uki FILE | --section .NAME=FILE... | --composefs DIGEST [--pcr N])",
		Short: "Predict PCR 11 for a UKI, or the composefs PCR for a digest",
		Long: `Predict PCR values from zero, as systemd-measure calculate does.

With --uki (or its sections given one by one with --section), PCR 11 after
each boot phase path: enter-initrd, enter-initrd:leave-initrd,
...:sysinit and ...:ready. systemd-stub measures each section as H(name NUL)
then H(contents of VirtualSize bytes), in its canonical order.

With --composefs, the PCR (15 by default, rd.cfsboot.pcr=) after
cfsboot-init measures "composefs:<digest>" (64 hex digits for a SHA-256
digest, 128 for SHA-512: the booted image's fs-verity digest as the command
line names it).

JSON schema (--json): [{"pcr", "phase", "bank", "value"}].`,
		Example: `  cfsboot pcr predict --uki uki.efi --banks sha256
  cfsboot pcr predict --composefs 3f2a...e1 --json`,
		Args: exactArgs(),
	}
	f := cmd.Flags()
	ukiPath := f.String("uki", "", "a unified kernel image `FILE`: predict PCR 11")
	sections := f.StringToString("section", nil, "a UKI section as `.NAME=FILE` (repeatable), instead of --uki")
	composefs := f.String("composefs", "", "a composefs `DIGEST` (64 or 128 hex digits): predict the PCR it is measured into")
	pcr := f.Int("pcr", tpm.PCR15, "the PCR the composefs digest is measured into (rd.cfsboot.pcr=)")
	bankList := f.StringSlice("banks", []string{"sha1", "sha256"}, "banks to predict")
	asJSON := jsonFlag(f)
	cmd.MarkFlagsMutuallyExclusive("uki", "composefs")
	cmd.MarkFlagsMutuallyExclusive("section", "composefs")
	cmd.MarkFlagsOneRequired("uki", "section", "composefs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		banks, err := parseBanks(*bankList)
		if err != nil {
			return err
		}
		var vals []pcrValue
		if *composefs != "" {
			d, err := verity.ParseSum(*composefs)
			if err != nil {
				return usageErrorf("--composefs: %w", err)
			}
			for _, b := range banks {
				vals = append(vals, pcrValue{PCR: *pcr, Bank: b.Name, Value: hex.EncodeToString(tpm.PredictComposefs(d, b))})
			}
			return printValues(cmd, vals, *asJSON)
		}
		data := map[string][]byte{}
		if *ukiPath != "" {
			f, err := os.Open(*ukiPath)
			if err != nil {
				return err
			}
			defer f.Close()
			if data, err = uki.MeasuredSections(f); err != nil {
				return fmt.Errorf("%s: %w", *ukiPath, err)
			}
		}
		for name, file := range *sections {
			if !strings.HasPrefix(name, ".") {
				return usageErrorf("--section %s=%s: section names start with a dot", name, file)
			}
			if data[name], err = os.ReadFile(file); err != nil {
				return err
			}
		}
		for _, p := range tpm.PredictPCR11(data, banks) {
			vals = append(vals, pcrValue{PCR: tpm.PCR11, Phase: p.Path, Bank: p.Bank, Value: hex.EncodeToString(p.Value)})
		}
		return printValues(cmd, vals, *asJSON)
	}
	return cmd
}

// deviceFlag adds --device for commands that talk to the TPM.
func deviceFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("device", "", "TPM device `PATH` (default /dev/tpmrm0, then /dev/tpm0)")
}

func newPCRReadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Read PCR values from the TPM in every active bank",
		Long: `Read PCR values from the TPM, in every bank the TPM has active.

JSON schema (--json): [{"pcr", "bank", "value"}].`,
		Example: "  cfsboot pcr read --pcr 11,15",
		Args:    exactArgs(),
	}
	pcrList := cmd.Flags().StringSlice("pcr", []string{"11", "15"}, "PCRs to read")
	device := deviceFlag(cmd)
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
		return printValues(cmd, vals, *asJSON)
	}
	return cmd
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

func newPCRLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Replay the measurement log and compare it with the TPM",
		Long: `Replay systemd's userspace measurement log (JSON-seq) per PCR and bank,
check that each event's digest is the hash of its content, and compare the
result with the TPM. Exit status 1 when they disagree.

JSON schema (--json): [{"pcr", "bank", "events", "replayed", "tpm", "match"}].`,
		Example: "  cfsboot pcr log\n  cfsboot pcr log --json",
		Args:    exactArgs(),
	}
	path := cmd.Flags().String("log", tpm.LogPath, "the measurement log `FILE`")
	only := cmd.Flags().StringSlice("pcr", nil, "check only these PCRs (default: every PCR the log names; PCR 11 of a UKI boot also holds systemd-stub's events, which are in the firmware's log)")
	device := deviceFlag(cmd)
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := os.Open(*path)
		if err != nil {
			return err
		}
		defer f.Close()
		records, err := tpm.ParseLog(f)
		if err != nil {
			return err
		}
		if len(*only) > 0 {
			pcrs, err := parsePCRs(*only)
			if err != nil {
				return err
			}
			records = slices.DeleteFunc(records, func(r tpm.Record) bool { return !slices.Contains(pcrs, r.PCR) })
		}
		if dirty, _ := tpm.IsDirty(*path); dirty {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %v\n", *path, tpm.ErrDirtyLog)
		}
		t, banks, err := openTPM(*device)
		if err != nil {
			return err
		}
		defer t.Close()
		checks, verdict := tpm.CheckLog(records, banks, func(pcr int) ([]tpm.Digest, error) { return tpm.Read(t, pcr, banks) })
		if checks == nil && verdict != nil {
			return fmt.Errorf("%s: %w", *path, verdict)
		}
		if *asJSON {
			if err := printJSON(cmd, checks); err != nil {
				return err
			}
		} else {
			for _, c := range checks {
				v := "matches the TPM"
				if !c.Match {
					v = "DOES NOT match the TPM (" + c.TPM + ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "PCR %-2d %-7s %d event(s) replay to %s: %s\n", c.PCR, c.Bank, c.Events, c.Replayed, v)
			}
		}
		return verdict
	}
	return cmd
}
