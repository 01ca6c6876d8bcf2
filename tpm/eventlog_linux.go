package tpm

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LogPath is where systemd keeps its userspace TPM measurement log; /run
// moves into the booted root, so systemd-pcrlock and systemd-analyze find
// our records there.
const LogPath = "/run/log/systemd/tpm2-measure.log"

// Record is one measurement, as systemd writes it (RFC 7464 JSON-seq).
type Record struct {
	PCR         int           `json:"pcr"`
	Digests     []LogDigest   `json:"digests"`
	ContentType string        `json:"content_type"`
	Content     RecordContent `json:"content"`
}

// LogDigest is one bank's event digest.
type LogDigest struct {
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"`
}

// RecordContent describes the event.
type RecordContent struct {
	String    string `json:"string,omitempty"`
	BootID    string `json:"bootId,omitempty"`
	Timestamp uint64 `json:"timestamp,omitempty"`
	EventType string `json:"eventType,omitempty"`
}

// Event types (systemd's names).
const (
	EventPhase      = "phase"      // systemd-pcrphase: enter-initrd, leave-initrd, ...
	EventFilesystem = "filesystem" // a file system's identity (systemd-pcrfs), here the composefs root
)

// Log is the measurement log opened for appending with systemd's protocol:
// exclusive flock, and the sticky bit set while a measurement is under way
// so a reader can tell a log that misses a record from a complete one.
type Log struct {
	f        *os.File
	wasDirty bool // marked when opened: it stays marked, whatever we add
	appended bool // a record was written in full
}

// ErrDirtyLog: the log's sticky bit was set: a writer died between
// extending a PCR and recording it, so the log may miss an event.
var ErrDirtyLog = errors.New("measurement log is marked dirty (a writer was interrupted; it may miss an event)")

// OpenLog opens (creating) the log, locks it and marks it dirty. A log that
// was already dirty is reported with ErrDirtyLog alongside a usable Log.
func OpenLog(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("measurement log: %w", err)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("measurement log %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("measurement log %s: lock: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("measurement log %s: not a regular file", path)
	}
	l := &Log{f: f, wasDirty: st.Mode&unix.S_ISVTX != 0}
	if err := unix.Fchmod(fd, (st.Mode&0o7777)|unix.S_ISVTX); err != nil {
		f.Close()
		return nil, fmt.Errorf("measurement log %s: mark dirty: %w", path, err)
	}
	if l.wasDirty {
		return l, ErrDirtyLog
	}
	return l, nil
}

// Append writes one record.
func (l *Log) Append(r Record) error {
	if _, err := l.f.Write(append(r.appendJSON([]byte{0x1e}), '\n')); err != nil {
		return fmt.Errorf("measurement log: %w", err)
	}
	l.appended = true
	return nil
}

// Close makes the records durable and unlocks. The dirty mark is cleared
// only when this writer found the log clean and appended its record: a log
// that missed an event, or whose PCR was extended without a record, keeps it.
func (l *Log) Close() error {
	err := l.f.Sync()
	if err == nil && l.appended && !l.wasDirty {
		var st unix.Stat_t
		if err = unix.Fstat(int(l.f.Fd()), &st); err == nil {
			err = unix.Fchmod(int(l.f.Fd()), st.Mode&0o7777&^unix.S_ISVTX)
		}
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("measurement log: %w", err)
	}
	return nil
}

// NewRecord builds the log record of an event measured into pcr.
func NewRecord(pcr int, digests []Digest, content RecordContent) Record {
	r := Record{PCR: pcr, ContentType: "systemd", Content: content}
	for _, d := range digests {
		r.Digests = append(r.Digests, LogDigest{HashAlg: d.Bank.Name, Digest: hex.EncodeToString(d.Value)})
	}
	return r
}

// ParseLog reads the records of a JSON-seq log.
func ParseLog(r io.Reader) ([]Record, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i, chunk := range bytes.Split(data, []byte{0x1e}) {
		chunk = bytes.TrimSpace(chunk)
		if len(chunk) == 0 {
			continue
		}
		var rec Record
		dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(chunk)))
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("measurement log record %d: %w", i, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// IsDirty reports whether the log at path carries the dirty mark.
func IsDirty(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_ISVTX != 0, nil
}
