package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"cfsboot/secureboot"
	"cfsboot/uki"
)

func newUKICmd() *cobra.Command {
	cmd := &cobra.Command{Use: "uki", Short: "Build, sign, verify and inspect unified kernel images"}
	cmd.AddCommand(newUKIBuildCmd(), newUKISignCmd(), newUKIVerifyCmd(), newUKIInspectCmd())
	return cmd
}

func newUKIBuildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build --stub FILE --kernel FILE [--initrd FILE] [--cmdline TEXT] ... -o FILE",
		Short: "Make a UKI from systemd-stub, a kernel, an initrd and a command line",
		Long: `Append the kernel, initrd, command line and the other parts as sections
after the last section of a systemd-stub (linuxx64.efi.stub), laid out as
ukify lays them out. The stub's .sbat section gets the stub's, the kernel's
and the given SBAT entries. The same inputs give the same bytes.

With --pcr-key (an RSA private key, PEM), the UKI carries .pcrpkey (its
public key) and .pcrsig: the PCR 11 policy for each boot phase path, signed,
as systemd-measure sign writes it, so that secrets sealed with
systemd-cryptenroll --tpm2-public-key unseal across signed updates.

The UKI is not signed: use cfsboot uki sign.`,
		Example: `  cfsboot uki build --stub /usr/lib/systemd/boot/efi/linuxx64.efi.stub \
    --kernel vmlinuz --initrd initrd.img --cmdline "composefs=3f2a...e1 root=LABEL=root" -o uki.efi`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	stub := f.String("stub", "", "systemd-stub `FILE` (linuxx64.efi.stub)")
	kernel := f.String("kernel", "", "kernel `FILE` (vmlinuz) for .linux")
	initrd := f.String("initrd", "", "initrd `FILE` for .initrd")
	cmdline := f.String("cmdline", "", "kernel command line for .cmdline")
	osRelease := f.String("os-release", "", "os-release `FILE` for .osrel")
	uname := f.String("uname", "", "kernel `VERSION` for .uname")
	sbat := f.String("sbat", "", "SBAT `FILE` to merge into .sbat (default: ukify's generic UKI entry)")
	splash := f.String("splash", "", "BMP `FILE` for .splash")
	pcrKey := f.String("pcr-key", "", "RSA private key `FILE` (PEM) signing the PCR 11 policies into .pcrsig")
	pcrBanks := f.StringSlice("pcr-banks", []string{"sha256"}, "banks of the signed PCR 11 policies")
	output := f.StringP("output", "o", "", "the UKI `FILE` to write")
	for _, name := range []string{"stub", "kernel", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var parts uki.Parts
		for _, in := range []struct {
			path string
			into *[]byte
		}{{*kernel, &parts.Linux}, {*initrd, &parts.Initrd}, {*osRelease, &parts.OSRelease}, {*sbat, &parts.SBAT}, {*splash, &parts.Splash}} {
			if in.path == "" {
				continue
			}
			data, err := os.ReadFile(in.path)
			if err != nil {
				return err
			}
			*in.into = data
		}
		parts.Cmdline = []byte(*cmdline)
		parts.Uname = []byte(*uname)
		if *pcrKey != "" {
			key, err := secureboot.LoadPrivateKey(*pcrKey)
			if err != nil {
				return err
			}
			parts.PCRKey, parts.PCRBanks = key, *pcrBanks
		}
		stubData, err := os.ReadFile(*stub)
		if err != nil {
			return err
		}
		out, err := uki.Build(stubData, parts)
		if err != nil {
			return fmt.Errorf("%s: %w", *stub, err)
		}
		return os.WriteFile(*output, out, 0o644)
	}
	return cmd
}

func newUKISignCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign --key FILE --cert FILE IN -o OUT",
		Short: "Sign a UKI (or any EFI PE image) for Secure Boot",
		Long: `Add an Authenticode signature (PKCS#7 SignedData over the image's SHA-256
Authenticode hash) made with an RSA key and its certificate, as sbsign does.
An image that is already signed is refused.`,
		Example: "  cfsboot uki sign --key keys/db/db.key --cert keys/db/db.pem uki.efi -o uki.signed.efi",
		Args:    cobra.ExactArgs(1),
	}
	keyPath := cmd.Flags().String("key", "", "RSA private key `FILE` (PEM)")
	certPath := cmd.Flags().String("cert", "", "X.509 certificate `FILE` (PEM or DER) of the key")
	output := cmd.Flags().StringP("output", "o", "", "the signed image `FILE`")
	for _, name := range []string{"key", "cert", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, err := secureboot.LoadPrivateKey(*keyPath)
		if err != nil {
			return err
		}
		cert, err := secureboot.LoadCertificate(*certPath)
		if err != nil {
			return err
		}
		image, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		signed, err := uki.Sign(image, key, cert)
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		return os.WriteFile(*output, signed, 0o644)
	}
	return cmd
}

func newUKIVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify --cert FILE IMAGE",
		Short: "Check an image's Secure Boot signature against a certificate",
		Long: `Check that one of the image's Authenticode signatures covers the image as
it is and was made by the certificate's key (or a key it certified), as
firmware with that certificate in db would. Exits 1 when it does not.`,
		Example: "  cfsboot uki verify --cert keys/db/db.pem uki.signed.efi",
		Args:    cobra.ExactArgs(1),
	}
	certPath := cmd.Flags().String("cert", "", "X.509 certificate `FILE` (PEM or DER)")
	_ = cmd.MarkFlagRequired("cert")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cert, err := secureboot.LoadCertificate(*certPath)
		if err != nil {
			return err
		}
		image, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		if err := uki.Verify(image, cert); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: signature by %s verified\n", args[0], cert.Subject)
		return nil
	}
	return cmd
}

func newUKIInspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show a UKI's sections, command line, signatures and PCR 11 prediction",
		Long: `Show a UKI's sections (sizes, addresses, SHA-256 of their contents), its
command line, os-release name and kernel version, its Authenticode
signatures and the PCR 11 values systemd-stub's measurements lead to after
each boot phase path.

JSON schema (--json): {"sections": [{"name", "virtual_size", "virtual_address",
"raw_size", "file_offset", "sha256"}], "cmdline", "os_release", "uname",
"signatures": [{"subject", "issuer", "image_hash", "hash_matches"}],
"pcr11": [{"phase", "bank", "value"}]}.`,
		Example: "  cfsboot uki inspect uki.efi --json",
		Args:    cobra.ExactArgs(1),
	}
	bankList := cmd.Flags().StringSlice("banks", []string{"sha256"}, "banks to predict PCR 11 in")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		banks, err := parseBanks(*bankList)
		if err != nil {
			return err
		}
		image, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		info, err := uki.Inspect(image, banks)
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *asJSON {
			return printJSON(cmd, info)
		}
		fmt.Fprintf(w, "%-9s %10s %10s %10s\n", "section", "size", "address", "offset")
		for _, s := range info.Sections {
			fmt.Fprintf(w, "%-9s %10d %#10x %#10x\n", s.Name, s.VirtualSize, s.VirtualAddress, s.FileOffset)
		}
		fmt.Fprintf(w, "cmdline:    %s\nos-release: %s\nuname:      %s\n", info.Cmdline, info.OSRelease, info.Uname)
		if len(info.Signatures) == 0 {
			fmt.Fprintln(w, "signatures: none")
		}
		for _, s := range info.Signatures {
			state := "covers this image"
			if !s.HashMatches {
				state = "DOES NOT cover this image (changed after signing)"
			}
			fmt.Fprintf(w, "signature:  %s (issuer %s), %s\n", s.Subject, s.Issuer, state)
		}
		for _, v := range info.PCR11 {
			fmt.Fprintf(w, "PCR 11 %-40s %-7s %s\n", v.Phase, v.Bank, v.Value)
		}
		return nil
	}
	return cmd
}
