package disk

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ReadTable reads a disk's GPT with sfdisk (util-linux), for the tools
// that work on an installed disk file offline: where the ESP and the root
// partition are and what they are called.
func ReadTable(path string) (*Table, error) {
	out, err := exec.Command("sfdisk", "--json", path).Output()
	if err != nil {
		var detail string
		if ee, ok := err.(*exec.ExitError); ok {
			detail = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, fmt.Errorf("read partition table of %s: sfdisk: %w: %s", path, err, detail)
	}
	t, err := parseSfdiskJSON(path, out)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	defer f.Close()
	if t.DiskSize, err = f.Seek(0, io.SeekEnd); err != nil {
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	return t, nil
}

func parseSfdiskJSON(path string, data []byte) (*Table, error) {
	var d struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			SectorSize int    `json:"sectorsize"`
			Partitions []struct {
				Start uint64 `json:"start"`
				Size  uint64 `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("partition table of %s: %w", path, err)
	}
	pt := d.PartitionTable
	if pt.Label != "gpt" {
		return nil, fmt.Errorf("%s has a %q partition table, not gpt", path, pt.Label)
	}
	if pt.SectorSize != 0 && pt.SectorSize != SectorSize {
		return nil, fmt.Errorf("%s has %d-byte sectors; only %d is supported", path, pt.SectorSize, SectorSize)
	}
	t := &Table{}
	var err error
	if t.DiskGUID, err = ParseGUID(pt.ID); err != nil {
		return nil, fmt.Errorf("partition table of %s: disk %w", path, err)
	}
	for i, p := range pt.Partitions {
		if p.Size == 0 {
			return nil, fmt.Errorf("partition %d of %s is empty", i+1, path)
		}
		part := Partition{Name: p.Name, Size: int64(p.Size) * SectorSize, FirstLBA: p.Start, LastLBA: p.Start + p.Size - 1}
		if part.Type, err = ParseGUID(p.Type); err != nil {
			return nil, fmt.Errorf("partition %d of %s: type %w", i+1, path, err)
		}
		if part.UUID, err = ParseGUID(p.UUID); err != nil {
			return nil, fmt.Errorf("partition %d of %s: %w", i+1, path, err)
		}
		t.Partitions = append(t.Partitions, part)
	}
	return t, nil
}

// Find returns the first partition of type typ.
func (t *Table) Find(typ GUID) (Partition, error) {
	for _, p := range t.Partitions {
		if p.Type == typ {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("no partition of type %s", typ)
}
