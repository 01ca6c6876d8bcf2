package efivar

import (
	"fmt"
	"os"
)

// Dir is where efivarfs is mounted.
const Dir = "/sys/firmware/efi/efivars"

// ReadLoaderString reads a Boot Loader Interface string variable; the
// error wraps fs.ErrNotExist when the variable (or efivarfs) is absent.
func ReadLoaderString(name string) (string, error) {
	data, err := os.ReadFile(Dir + "/" + name + "-" + LoaderGUID)
	if err != nil {
		return "", fmt.Errorf("efi variable %s: %w", name, err)
	}
	s, err := ParseString(data)
	if err != nil {
		return "", fmt.Errorf("efi variable %s: %w", name, err)
	}
	return s, nil
}
