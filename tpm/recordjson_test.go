package tpm

import (
	"encoding/json"
	"testing"
)

func checkAgainstEncodingJSON(t *testing.T, r Record) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.appendJSON(nil); string(got) != string(want) {
		t.Fatalf("record %+v:\n got %s\nwant %s", r, got, want)
	}
}

func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	b := mustBank("sha256")
	for _, r := range []Record{
		{},
		NewRecord(11, EventDigests([]Bank{b, mustBank("sha1")}, []byte("enter-initrd")), RecordContent{String: "enter-initrd", BootID: "0123abcd", Timestamp: 1234567, EventType: EventPhase}),
		NewRecord(15, nil, RecordContent{String: "<&> \"\\\b\f\n\r\t\x00\x1f\x7f \u2028\u2029 é \xff\xfe"}),
		{PCR: -1, Digests: []LogDigest{}, Content: RecordContent{Timestamp: 1}},
	} {
		checkAgainstEncodingJSON(t, r)
	}
}

// FuzzRecordJSON: encoding/json is the oracle for every string.
func FuzzRecordJSON(f *testing.F) {
	f.Add("composefs:00ff", "phase", uint64(7), 15)
	f.Add("\u2028<\xff\x01", "", uint64(0), -3)
	f.Fuzz(func(t *testing.T, s, typ string, ts uint64, pcr int) {
		checkAgainstEncodingJSON(t, Record{PCR: pcr, Digests: []LogDigest{{HashAlg: typ, Digest: s}}, ContentType: s, Content: RecordContent{String: s, BootID: typ, Timestamp: ts, EventType: typ}})
	})
}
