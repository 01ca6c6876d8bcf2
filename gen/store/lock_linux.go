package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Lock is how a process holds a store.
type Lock int

const (
	// Shared: reading and adding; any number of holders.
	Shared Lock = iota
	// Exclusive: deleting (gc, repair); no other holder.
	Exclusive
)

func (l Lock) String() string {
	if l == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// OpenOptions say which lock OpenExisting takes and how.
type OpenOptions struct {
	Lock Lock
	// NoWait fails with a *BusyError instead of waiting for the lock.
	NoWait bool
	// Waiting, if set, is called before blocking, with the processes
	// that hold the lock.
	Waiting func(holders []Holder)
}

// Holder is a process holding a lock on a store.
type Holder struct {
	PID     int
	Command string // from /proc/PID/comm; empty when unknown
	Lock    Lock
}

func (h Holder) String() string {
	if h.Command == "" {
		return fmt.Sprintf("process %d (%s lock)", h.PID, h.Lock)
	}
	return fmt.Sprintf("process %d %s (%s lock)", h.PID, h.Command, h.Lock)
}

// BusyError: the lock was wanted without waiting and others hold it.
type BusyError struct {
	Dir     string
	Want    Lock
	Holders []Holder
}

func (e *BusyError) Error() string {
	if len(e.Holders) == 0 {
		return fmt.Sprintf("store %s: cannot take the %s lock: held by another process", e.Dir, e.Want)
	}
	var hs []string
	for _, h := range e.Holders {
		hs = append(hs, h.String())
	}
	return fmt.Sprintf("store %s: cannot take the %s lock: held by %s", e.Dir, e.Want, strings.Join(hs, ", "))
}

func (s *Store) takeLock(opts OpenOptions) error {
	how := unix.LOCK_SH
	if opts.Lock == Exclusive {
		how = unix.LOCK_EX
	}
	err := flock(s.fd, how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		holders, _ := s.Holders()
		if opts.NoWait {
			return &BusyError{Dir: s.dir, Want: opts.Lock, Holders: holders}
		}
		if opts.Waiting != nil {
			opts.Waiting(holders)
		}
		err = flock(s.fd, how)
	}
	if err != nil {
		return fmt.Errorf("store %s: taking the %s lock: %w", s.dir, opts.Lock, err)
	}
	s.lock = opts.Lock
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Holders lists the processes holding a lock on the store directory, as
// /proc/locks shows them (waiters are not holders).
func (s *Store) Holders() ([]Holder, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(s.fd.Fd()), &st); err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	holders, err := parseLocks(bufio.NewScanner(f), unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for i, h := range holders {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.PID)); err == nil {
			holders[i].Command = strings.TrimSpace(string(comm))
		}
	}
	return holders, err
}

// parseLocks reads /proc/locks lines such as
//
//	3: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
//	3: -> FLOCK  ADVISORY  WRITE 1240 fd:01:5678 0 EOF   (a waiter)
//
// and returns the flock holders of inode ino on device major:minor (hex).
func parseLocks(sc *bufio.Scanner, major, minor uint32, ino uint64) ([]Holder, error) {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	var holders []Holder
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		h := Holder{PID: pid, Lock: Shared}
		if f[3] == "WRITE" {
			h.Lock = Exclusive
		}
		holders = append(holders, h)
	}
	return holders, sc.Err()
}
