package initramfs

import (
	"errors"
	"strings"
	"testing"

	"cfsboot/verity"
)

var (
	hex256 = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52"
	hex512 = "6f06b5e82420abec546d6e6d3ddd612c50cfa9b707c129345b7ec16f456b92fe35df68999b042e1a6a70dfe75f2fed8cf9f67afd0bf08d2374678d75e2f65a02"
)

func TestComposefsArgsAccepted(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  []string // String() of each, in order
	}{
		{[]string{"composefs=" + hex256}, []string{"composefs=" + hex256}},
		{[]string{"composefs=" + hex512}, []string{"composefs=" + hex512}},
		{[]string{"composefs=?" + hex256}, []string{"composefs=?" + hex256}},
		{[]string{"composefs=" + strings.ToUpper(hex512)}, []string{"composefs=" + hex512}},
		{[]string{"composefs.digest=v1-sha256-12:" + hex256}, []string{"composefs.digest=v1-sha256-12:" + hex256}},
		{[]string{"composefs.digest=v1-sha512-12:" + hex512}, []string{"composefs.digest=v1-sha512-12:" + hex512}},
		{[]string{"composefs.digest=v2-sha512-12:" + hex512}, []string{"composefs.digest=v2-sha512-12:" + hex512}},
		{[]string{"composefs.digest=?v1-sha256-12:" + hex256}, []string{"composefs.digest=?v1-sha256-12:" + hex256}},
		{[]string{"composefs.digest=?v2-sha512-12:" + hex512}, []string{"composefs.digest=?v2-sha512-12:" + hex512}},
		// Mixed algorithms keep their order, a repeat is tried once;
		// composefs= comes last whatever its place, and only the last
		// composefs= counts.
		{
			[]string{"root=UUID=x", "composefs=" + hex512, "composefs.digest=v1-sha512-12:" + hex512, "rw", "composefs.digest=v2-sha256-12:" + hex256, "composefs=" + hex256, "composefs.digest=v1-sha512-12:" + hex512},
			[]string{"composefs.digest=v1-sha512-12:" + hex512, "composefs.digest=v2-sha256-12:" + hex256, "composefs=" + hex256},
		},
		// The same digest with and without '?' are two entries.
		{
			[]string{"composefs.digest=?v1-sha256-12:" + hex256, "composefs.digest=v1-sha256-12:" + hex256},
			[]string{"composefs.digest=?v1-sha256-12:" + hex256, "composefs.digest=v1-sha256-12:" + hex256},
		},
		// Lookalike keys are not ours.
		{[]string{"composefs.digests=x", "rd.composefs=x", "composefs=" + hex256}, []string{"composefs=" + hex256}},
	} {
		args, err := ComposefsArgs(c.words)
		if err != nil {
			t.Errorf("%q: %v", c.words, err)
			continue
		}
		var got []string
		for _, a := range args {
			got = append(got, a.String())
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q:\n got %q\nwant %q", c.words, got, c.want)
		}
	}
}

func TestComposefsArgFields(t *testing.T) {
	a, err := ParseComposefsDigest("?v2-sha512-12:" + hex512)
	want, _ := verity.ParseSum(hex512)
	if err != nil || a.Key != KeyComposefsDigest || a.Format != 2 || !a.Optional || a.Digest != want || a.Digest.Algorithm() != verity.SHA512 {
		t.Errorf("got %+v, %v", a, err)
	}
	a, err = ParseComposefsLegacy(hex256)
	want, _ = verity.ParseSum(hex256)
	if err != nil || a.Key != KeyComposefs || a.Format != 0 || a.Optional || a.Digest != want {
		t.Errorf("got %+v, %v", a, err)
	}
}

func TestComposefsArgsRejected(t *testing.T) {
	for _, w := range []string{
		"composefs=",
		"composefs=?",
		"composefs=" + hex256[:63],
		"composefs=" + hex256 + "0",
		"composefs=" + hex512[:127],
		"composefs=" + hex256 + hex256[:32], // 96 digits: no algorithm
		"composefs=" + strings.Repeat("g", 64),
		"composefs=??" + hex256,
		"composefs= " + hex256,
		"composefs=sha256:" + hex256,
		"composefs.digest=",
		"composefs.digest=" + hex256,
		"composefs.digest=v1-sha256-12",
		"composefs.digest=v1-sha256-12:",
		"composefs.digest=v0-sha256-12:" + hex256,
		"composefs.digest=v3-sha256-12:" + hex256,
		"composefs.digest=V1-sha256-12:" + hex256,
		"composefs.digest=v1-sha256:" + hex256,
		"composefs.digest=v1-sha256-13:" + hex256,
		"composefs.digest=v1-sha256-8:" + hex256,
		"composefs.digest=v1-sha256-012:" + hex256,
		"composefs.digest=v1-sha1-12:" + hex256,
		"composefs.digest=v1-SHA256-12:" + hex256,
		"composefs.digest=v1-sha256-12:" + hex512, // length of the other algorithm
		"composefs.digest=v1-sha512-12:" + hex256,
		"composefs.digest=v1-sha256-12:?" + hex256,
		"composefs.digest=??v1-sha256-12:" + hex256,
		"composefs.digest=v1-sha256-12:" + hex256 + ":",
		"composefs.digest=v1:sha256-12:" + hex256,
	} {
		if args, err := ComposefsArgs([]string{w}); err == nil {
			t.Errorf("%q accepted: %+v", w, args)
		}
		// A bad value is an error even beside a good one, never skipped.
		if _, err := ComposefsArgs([]string{"composefs.digest=v1-sha256-12:" + hex256, w}); err == nil {
			t.Errorf("%q beside a good digest accepted", w)
		}
	}
	if _, err := ComposefsArgs([]string{"root=/dev/vda", "rw"}); !errors.Is(err, ErrNoComposefsArg) {
		t.Errorf("no composefs key: %v", err)
	}
}

func FuzzComposefsArgs(f *testing.F) {
	f.Add("composefs.digest=?v1-sha512-12:" + hex512)
	f.Add("composefs.digest=v2-sha256-12:" + hex256)
	f.Add("composefs=" + hex256)
	f.Add("composefs=?" + hex512)
	f.Fuzz(func(t *testing.T, word string) {
		args, err := ComposefsArgs([]string{word})
		if err != nil {
			return
		}
		again, err := ComposefsArgs([]string{args[0].String()})
		if err != nil || len(args) != 1 || again[0] != args[0] {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", word, args, args[0].String(), again, err)
		}
		if !strings.EqualFold(args[0].String(), word) {
			t.Fatalf("%q rendered as %q", word, args[0].String())
		}
	})
}
