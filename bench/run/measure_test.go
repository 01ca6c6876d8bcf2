package main

import "testing"

const timeOutput = `	Command being timed: "sh -c true"
	User time (seconds): 1.25
	System time (seconds): 0.50
	Percent of CPU this job got: 120%
	Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.50
	Maximum resident set size (kbytes): 40960
	Exit status: 0
`

func TestParseTime(t *testing.T) {
	s, err := parseTime(timeOutput)
	if err != nil {
		t.Fatal(err)
	}
	if s != (Sample{Wall: 62.5, User: 1.25, System: 0.5, MaxKiB: 40960}) {
		t.Fatalf("got %+v", s)
	}
	if _, err := parseTime("User time (seconds): 1\n"); err == nil {
		t.Fatal("output without wall time and RSS parsed")
	}
	if w, err := clock("1:00:01.5"); err != nil || w != 3601.5 {
		t.Fatalf("clock h:mm:ss = %v, %v", w, err)
	}
}

func TestMedian(t *testing.T) {
	if m := med([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median of 5 1 3 = %v", m)
	}
	if m := med([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4 1 3 2 = %v", m)
	}
}

func FuzzParseTime(f *testing.F) {
	f.Add(timeOutput)
	f.Fuzz(func(t *testing.T, s string) { parseTime(s) })
}
