package inplace

import (
	"errors"
	"fmt"
	"os"

	"cfsboot/verity"
)

// Seal enables fs-verity on every file Files lists (files already sealed
// are only measured) and checks each digest against the name. progress is
// called after each file.
func Seal(dir string, progress func(done, total int)) (int, error) {
	files, err := Files(dir)
	if err != nil {
		return 0, err
	}
	for i, f := range files {
		if err := sealOne(f); err != nil {
			return i, err
		}
		if progress != nil {
			progress(i+1, len(files))
		}
	}
	return len(files), nil
}

func sealOne(f File) error {
	fd, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer fd.Close()
	got, err := verity.MeasureSum(int(fd.Fd()))
	if errors.Is(err, verity.ErrNotEnabled) {
		if err := verity.EnableAlgorithm(int(fd.Fd()), f.Alg); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		got, err = verity.MeasureSum(int(fd.Fd()))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if got.Algorithm() != f.Alg || got.String() != f.Want {
		return fmt.Errorf("%s: fs-verity digest %s:%s does not match its name", f.Path, got.Algorithm(), got)
	}
	return nil
}
