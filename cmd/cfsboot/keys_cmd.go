package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"cfsboot/secureboot"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create and enroll your own Secure Boot keys"}
	cmd.AddCommand(newKeysCreateCmd(), newKeysEnrollCmd(), newKeysStatusCmd())
	return cmd
}

func newKeysCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --dir DIR [--name NAME]",
		Short: "Create PK, KEK and db key pairs and an owner GUID",
		Long: `Create RSA 2048 key pairs with self-signed certificates for the platform
key (PK), the key exchange key (KEK) and the signature database (db), and a
random owner GUID, in sbctl's layout: DIR/GUID and
DIR/keys/{PK,KEK,db}/{PK,KEK,db}.{key,pem}. Existing keys are never
overwritten. Sign UKIs with keys/db/db.key and keys/db/db.pem.`,
		Example: "  cfsboot keys create --dir /var/lib/sbctl --name \"My machines\"",
		Args:    cobra.NoArgs,
	}
	dir := cmd.Flags().String("dir", "", "key `DIR`ectory")
	name := cmd.Flags().String("name", "cfsboot", "name at the start of each certificate's common name")
	_ = cmd.MarkFlagRequired("dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		k, err := secureboot.CreateKeys(*dir, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "created PK, KEK and db keys in %s (owner %s)\n", *dir, k.Owner)
		return nil
	}
	return cmd
}

func newKeysEnrollCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enroll --dir DIR [--export OUT]",
		Short: "Enroll the keys into the firmware (setup mode) or export .esl/.auth files",
		Long: `Write db, KEK and then PK as time-based authenticated EFI variables through
efivarfs, as sbctl does: db signed by KEK, KEK and PK signed by PK. The
firmware must be in setup mode (no PK enrolled); writing PK ends it, and
Secure Boot is on after the next reboot if the firmware enables it.

With --export, write DIR/{db,KEK,PK}.{esl,auth} instead (the signature
lists and the signed updates, as efitools' cert-to-efi-sig-list and
sign-efi-sig-list make them), to enroll from the firmware's menu or
KeyTool.`,
		Example: `  cfsboot keys enroll --dir /var/lib/sbctl
  cfsboot keys enroll --dir /var/lib/sbctl --export esp/keys`,
		Args: cobra.NoArgs,
	}
	dir := cmd.Flags().String("dir", "", "key `DIR`ectory (made by keys create)")
	export := cmd.Flags().String("export", "", "write .esl and .auth files to `OUT` instead of enrolling")
	efivars := cmd.Flags().String("efivars", secureboot.EfivarsDir, "efivarfs `DIR`")
	_ = cmd.MarkFlagRequired("dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		k, err := secureboot.LoadKeys(*dir)
		if err != nil {
			return err
		}
		vars, err := k.Variables(time.Now())
		if err != nil {
			return err
		}
		if *export != "" {
			return secureboot.Export(vars, *export)
		}
		if err := secureboot.Enroll(*efivars, vars); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "enrolled db, KEK and PK; the firmware has left setup mode")
		return nil
	}
	return cmd
}

// keysStatus is the JSON schema of keys status --json.
type keysStatus struct {
	SetupMode  bool     `json:"setup_mode"`
	SecureBoot bool     `json:"secure_boot"`
	PK         []string `json:"pk"`
	KEK        []string `json:"kek"`
	DB         []string `json:"db"`
}

func newKeysStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show setup mode, Secure Boot and the enrolled certificates",
		Long: `Read SetupMode, SecureBoot and the certificates in PK, KEK and db from
efivarfs.

JSON schema (--json): {"setup_mode", "secure_boot", "pk": [subject], "kek": [subject], "db": [subject]}.`,
		Example: "  cfsboot keys status --json",
		Args:    cobra.NoArgs,
	}
	efivars := cmd.Flags().String("efivars", secureboot.EfivarsDir, "efivarfs `DIR`")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := secureboot.ReadStatus(*efivars)
		if err != nil {
			return err
		}
		subjects := func(certs []secureboot.EnrolledCert) []string {
			out := []string{}
			for _, c := range certs {
				out = append(out, c.Cert.Subject.String())
			}
			return out
		}
		st := keysStatus{SetupMode: s.SetupMode, SecureBoot: s.SecureBoot, PK: subjects(s.PK), KEK: subjects(s.KEK), DB: subjects(s.DB)}
		w := cmd.OutOrStdout()
		if *asJSON {
			return printJSON(cmd, st)
		}
		onOff := map[bool]string{true: "on", false: "off"}
		fmt.Fprintf(w, "setup mode:  %s\nsecure boot: %s\n", onOff[st.SetupMode], onOff[st.SecureBoot])
		for _, db := range []struct {
			name  string
			certs []string
		}{{"PK", st.PK}, {"KEK", st.KEK}, {"db", st.DB}} {
			for _, c := range db.certs {
				fmt.Fprintf(w, "%-4s %s\n", db.name, c)
			}
		}
		return nil
	}
	return cmd
}
