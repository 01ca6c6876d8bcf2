package store

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// makeSplitstream lays a splitstream out as composefs-rs writes it (new
// layout) or as bootc <= 1.15 did (old layout), with SHA-256 ids.
func makeSplitstream(old bool, streams, objects [][32]byte) []byte {
	le := binary.LittleEndian
	rng := func(b []byte, start, end int) {
		le.PutUint64(b, uint64(start))
		le.PutUint64(b[8:], uint64(end))
	}
	hdr := make([]byte, 32)
	info := make([]byte, 80)
	infoStart := 32
	srStart := infoStart + len(info)
	orStart := srStart + 32*len(streams)
	end := orStart + 32*len(objects)
	rng(info[0:], srStart, orStart)
	rng(info[16:], orStart, end)
	rng(info[32:], end, end) // empty stream
	rng(info[48:], end, end) // no named refs
	if old {
		rng(hdr[0:], infoStart, srStart)
		copy(hdr[18:], "SplitStream")
		hdr[30], hdr[31] = 1, 12
	} else {
		copy(hdr, "SplitStream")
		hdr[14], hdr[15] = 1, 12
		rng(hdr[16:], infoStart, srStart)
	}
	out := append(hdr, info...)
	for _, id := range append(streams, objects...) {
		out = append(out, id[:]...)
	}
	return out
}

func TestSplitstreamRefs(t *testing.T) {
	s1, o1, o2 := [32]byte{0xab, 1}, [32]byte{0x01, 2}, [32]byte{0xff, 3}
	for _, old := range []bool{false, true} {
		data := makeSplitstream(old, [][32]byte{s1}, [][32]byte{o1, o2})
		streams, objects, err := splitstreamRefs(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("old=%v: %v", old, err)
		}
		if len(streams) != 1 || streams[0] != "ab/01"+strings.Repeat("0", 60) {
			t.Errorf("old=%v: streams %v", old, streams)
		}
		if len(objects) != 2 || objects[0] != "01/02"+strings.Repeat("0", 60) || objects[1][:2] != "ff" {
			t.Errorf("old=%v: objects %v", old, objects)
		}
	}
	good := makeSplitstream(false, nil, [][32]byte{o1})
	for name, mutate := range map[string]func([]byte){
		"magic":     func(b []byte) { b[0] = 'X' },
		"algorithm": func(b []byte) { b[14] = 9 },
		"range":     func(b []byte) { binary.LittleEndian.PutUint64(b[32+24:], 1<<40) },
		"ragged":    func(b []byte) { binary.LittleEndian.PutUint64(b[32+24:], uint64(len(b)-1)) },
	} {
		b := append([]byte(nil), good...)
		mutate(b)
		if _, _, err := splitstreamRefs(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: a broken splitstream was accepted", name)
		}
	}
}

func FuzzSplitstreamRefs(f *testing.F) {
	f.Add(makeSplitstream(false, [][32]byte{{1}}, [][32]byte{{2}, {3}}))
	f.Add(makeSplitstream(true, nil, [][32]byte{{4}}))
	f.Add([]byte("SplitStream"))
	f.Fuzz(func(t *testing.T, data []byte) {
		streams, objects, err := splitstreamRefs(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, r := range append(streams, objects...) {
			if !validObjectPath(r) {
				t.Fatalf("invalid object path %q", r)
			}
		}
	})
}
