package oci

import (
	"io"
	"slices"
	"strings"
	"testing"

	"cfsboot/verity"
)

// namesSink records the paths a NamedSink is told.
type namesSink struct{ names []string }

func (s *namesSink) Put(r io.Reader) (verity.Sum, error) { return verity.SHA256.Compute(r) }
func (s *namesSink) PutNamed(name string, r io.Reader) (verity.Sum, error) {
	s.names = append(s.names, name)
	return s.Put(r)
}

func TestNamedSinkLearnsPaths(t *testing.T) {
	big := strings.Repeat("x", 10000)
	img := imageOfTars(t,
		tarOf(t, dir("usr/"), file("usr/big", big), file("usr/small", "s")),
		tarOf(t, dir("./etc/"), file("./etc/big", big+"y")))
	sink := &namesSink{}
	res, err := Import(img, Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	// Inline (small) files reach no sink; the names are cleaned.
	if want := []string{"usr/big", "etc/big"}; !slices.Equal(sink.names, want) {
		t.Errorf("PutNamed saw %q, want %q", sink.names, want)
	}
	if n := res.Tree.Lookup("usr").Lookup("big"); n == nil || n.Digest == nil || *n.Digest != verity.ComputeBytes([]byte(big)) {
		t.Errorf("usr/big: %+v", n)
	}
}
