// Command enroll is the init of a test-only initrd booted through OVMF in
// setup mode: it enrolls the db, KEK and PK updates (/db.auth, /KEK.auth,
// /PK.auth, made on the host by secureboot.Keys.Variables) into the real
// firmware through efivarfs with secureboot.Enroll, reports the firmware's
// state before and after in "ENROLL key: value" lines, checks that a second
// enrollment is refused, and powers off.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"cfsboot/internal/vminit"
	"cfsboot/secureboot"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("ENROLL FAILED: %v\n", err)
	}
	vminit.PowerOff()
}

func report(key, format string, args ...any) {
	fmt.Printf("ENROLL %s: %s\n", key, fmt.Sprintf(format, args...))
}

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	if err := unix.Mount("efivarfs", secureboot.EfivarsDir, "efivarfs", 0, ""); err != nil {
		return fmt.Errorf("mount efivarfs: %w", err)
	}
	before, err := secureboot.ReadStatus(secureboot.EfivarsDir)
	if err != nil {
		return err
	}
	report("before", "setup mode %v, secure boot %v, %d PK", before.SetupMode, before.SecureBoot, len(before.PK))
	var vars []secureboot.Variable
	for _, name := range []string{"db", "KEK", "PK"} {
		auth, err := os.ReadFile("/" + name + ".auth")
		if err != nil {
			return err
		}
		vendor := secureboot.GlobalVariable
		if name == "db" {
			vendor = secureboot.ImageSecurityDatabase
		}
		vars = append(vars, secureboot.Variable{Name: name, Vendor: vendor, Auth: auth})
	}
	if err := secureboot.Enroll(secureboot.EfivarsDir, vars); err != nil {
		return err
	}
	after, err := secureboot.ReadStatus(secureboot.EfivarsDir)
	if err != nil {
		return err
	}
	for _, db := range []struct {
		name  string
		certs []secureboot.EnrolledCert
	}{{"PK", after.PK}, {"KEK", after.KEK}, {"db", after.DB}} {
		for _, c := range db.certs {
			report("enrolled "+db.name, "%s owner %s", c.Cert.Subject, c.Owner)
		}
	}
	report("after", "setup mode %v", after.SetupMode)
	report("again", "%v", secureboot.Enroll(secureboot.EfivarsDir, vars))
	return nil
}
