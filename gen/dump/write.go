package dump

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"cfsboot/gen/tree"
)

// Escaping modes of the reference's dump printer.
const (
	escapeEqual    = 1 << iota // '=' is hex-escaped (xattr names and values)
	escapeLoneDash             // a value that is exactly "-" is hex-escaped
)

// Write prints root and its descendants in composefs-dump(5) form, depth
// first in name order, as `composefs-info dump` does. A hard link prints
// its target's fields, an '@' before the mode and the target's path as
// payload.
func Write(w io.Writer, root *tree.Node) error {
	bw := bufio.NewWriter(w)
	err := root.Walk(func(n *tree.Node) error {
		writeNode(bw, n)
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func writeNode(w *bufio.Writer, n *tree.Node) {
	t := n.Target()
	writeEscaped(w, []byte(n.Path()), 0)
	link := ""
	if n.LinkTo != nil {
		link = "@"
	}
	fmt.Fprintf(w, " %d %s%o %d %d %d %d %d.%d ", t.Size, link, t.Mode, t.Nlink, t.UID, t.GID, t.Rdev, t.MtimeSec, t.MtimeNsec)
	switch {
	case n.LinkTo != nil:
		writeEscaped(w, []byte(t.Path()), escapeLoneDash)
	case t.Payload != "":
		writeEscaped(w, []byte(t.Payload), escapeLoneDash)
	default:
		w.WriteByte('-')
	}
	w.WriteByte(' ')
	if t.Content != nil {
		writeEscaped(w, t.Content, escapeLoneDash)
	} else {
		w.WriteByte('-')
	}
	if d, ok := t.FileDigest(); ok {
		w.WriteString(" " + d.String())
	} else {
		w.WriteString(" -")
	}
	for _, x := range t.Xattrs {
		w.WriteByte(' ')
		writeEscaped(w, []byte(x.Key), escapeEqual)
		w.WriteByte('=')
		writeEscaped(w, x.Value, escapeEqual)
	}
	w.WriteByte('\n')
}

// writeEscaped hex-escapes everything but printable non-space ASCII, with
// C-style escapes for backslash and the common control characters.
func writeEscaped(w *bufio.Writer, v []byte, mode int) {
	if mode&escapeLoneDash != 0 && len(v) == 1 && v[0] == '-' {
		w.WriteString(`\x2d`)
		return
	}
	for _, c := range v {
		switch {
		case c == '\\':
			w.WriteString(`\\`)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '\r':
			w.WriteString(`\r`)
		case c == '\t':
			w.WriteString(`\t`)
		case c == '=' && mode&escapeEqual != 0, c <= ' ' || c > '~':
			w.WriteString(`\x`)
			if c < 0x10 {
				w.WriteByte('0')
			}
			w.WriteString(strconv.FormatUint(uint64(c), 16))
		default:
			w.WriteByte(c)
		}
	}
}
