package store

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
)

const procLocks = `1: POSIX  ADVISORY  WRITE 700 fd:01:5678 0 EOF
2: FLOCK  ADVISORY  WRITE 1234 fd:01:99 0 EOF
3: FLOCK  ADVISORY  READ  1240 fd:01:5678 0 EOF
3: -> FLOCK  ADVISORY  WRITE 1250 fd:01:5678 0 EOF
4: FLOCK  ADVISORY  READ  1260 fd:01:5678 0 EOF
5: FLOCK  ADVISORY  WRITE 1270 fd:02:5678 0 EOF
6: OFDLCK ADVISORY  READ  -1 fd:01:5678 0 EOF
`

func TestParseLocks(t *testing.T) {
	got, err := parseLocks(bufio.NewScanner(strings.NewReader(procLocks)), 0xfd, 1, 5678)
	if err != nil {
		t.Fatal(err)
	}
	// Holders of flocks on that inode only: no POSIX or OFD locks, no
	// waiters, no other inode or device.
	if fmt.Sprint(got) != fmt.Sprint([]Holder{{PID: 1240, Lock: Shared}, {PID: 1260, Lock: Shared}}) {
		t.Errorf("holders %v", got)
	}
}

func FuzzParseLocks(f *testing.F) {
	f.Add(procLocks)
	f.Fuzz(func(t *testing.T, s string) {
		holders, _ := parseLocks(bufio.NewScanner(strings.NewReader(s)), 0xfd, 1, 5678)
		for _, h := range holders {
			if h.Lock != Shared && h.Lock != Exclusive {
				t.Fatalf("bad lock %v", h)
			}
		}
	})
}
