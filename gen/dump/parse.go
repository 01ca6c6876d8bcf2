// Package dump reads and writes the composefs-dump(5) text format, the
// portable description of a composefs tree: one line per inode with path,
// size, mode, nlink, uid, gid, rdev, mtime, payload, content, digest and
// xattrs, escaped as the reference tools (mkcomposefs --from-file,
// composefs-info dump) do.
package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// Limits the reference enforces on dump input.
const (
	maxPayload        = 4095      // PATH_MAX - 1
	maxInlineContent  = 5000      // LCFS_INLINE_CONTENT_MAX
	maxXattrNameLen   = 255       // XATTR_NAME_MAX
	maxXattrValueLen  = 1<<16 - 1 // fits EROFS' 16-bit value size
	maxInodeXattrSize = (1<<16 - 1) / 2
	maxXattrLineLen   = 1<<16 - 1
)

// Options select how strictly a dump is checked.
type Options struct {
	// Strict rejects what mkcomposefs accepts only for compatibility:
	// a device number on a non-device, a symlink whose size field
	// disagrees with its target or that has content, and a missing final
	// newline (the reference's CFS_PARSE_STRICT).
	Strict bool
}

// Parse reads a composefs dump and returns the root of the tree it
// describes. Errors name the line and the reason.
func Parse(r io.Reader, opts Options) (*tree.Node, error) {
	p := parser{opts: opts}
	br := bufio.NewReaderSize(r, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("dump: read: %w", err)
		}
		if len(line) == 0 && err == io.EOF {
			break
		}
		if line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		} else if opts.Strict {
			return nil, fmt.Errorf("dump: line %d: missing trailing newline", lineNo)
		}
		if perr := p.line(line); perr != nil {
			return nil, fmt.Errorf("dump: line %d: %w", lineNo, perr)
		}
		if err == io.EOF {
			break
		}
	}
	if p.root == nil {
		return nil, errors.New("dump: no files in dump")
	}
	if err := p.resolveHardlinks(); err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	return p.root, nil
}

type hardlinkFixup struct {
	node   *tree.Node
	target string
}

type parser struct {
	opts      Options
	root      *tree.Node
	fixups    []hardlinkFixup
	xattrSize map[*tree.Node]int // per-inode xattr budget, as the reference counts it
}

// splitField cuts the next space-separated field off *line; a missing
// field is empty, as in the reference.
func splitField(line *[]byte) []byte {
	i := bytes.IndexByte(*line, ' ')
	if i < 0 {
		f := *line
		*line = nil
		return f
	}
	f := (*line)[:i]
	*line = (*line)[i+1:]
	return f
}

const (
	fieldPath = iota
	fieldSize
	fieldMode
	fieldNlink
	fieldUID
	fieldGID
	fieldRdev
	fieldMtime
	fieldPayload
	fieldContent
	fieldDigest
	nFixedFields
)

func (p *parser) line(line []byte) error {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		return fmt.Errorf("embedded NUL character at position %d", i)
	}
	var f [nFixedFields][]byte
	for i := range f {
		f[i] = splitField(&line)
	}
	path, err := unescape(f[fieldPath])
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	if len(path) == 0 {
		return errors.New("empty path")
	}
	if bytes.IndexByte(path, 0) >= 0 {
		return fmt.Errorf("path %q contains NUL", path)
	}
	modeField := f[fieldMode]
	isLink := len(modeField) > 0 && modeField[0] == '@'
	if isLink {
		modeField = modeField[1:]
	}
	mode, err := parseUint(modeField, 8)
	if err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if !validType(uint32(mode)) {
		return fmt.Errorf("invalid mode %o", mode)
	}
	node := &tree.Node{Mode: uint32(mode), Nlink: 1}
	if err := p.add(string(path), node); err != nil {
		return err
	}
	if isLink {
		if node.Mode&tree.SIFMT == tree.SIFDIR {
			return errors.New("directories can't be hard-linked")
		}
		target, present, err := unescapeOptional(f[fieldPayload])
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		if !present {
			return fmt.Errorf("hard link %s has no target path", path)
		}
		p.fixups = append(p.fixups, hardlinkFixup{node, string(target)})
		return nil
	}
	return p.inode(node, f, line)
}

// inode fills a non-link node from its fixed fields and trailing xattrs.
func (p *parser) inode(node *tree.Node, f [nFixedFields][]byte, xattrs []byte) error {
	var nums [5]uint64
	for i, fi := range []int{fieldSize, fieldNlink, fieldUID, fieldGID, fieldRdev} {
		v, err := parseUint(f[fi], 10)
		if err != nil {
			return fmt.Errorf("field %d: %w", fi+1, err)
		}
		nums[i] = v
	}
	size, nlink, uid, gid, rdev := nums[0], nums[1], nums[2], nums[3], nums[4]
	sec, nsec, err := parseMtime(f[fieldMtime])
	if err != nil {
		return err
	}
	payload, _, err := unescapeOptional(f[fieldPayload])
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	content, hasContent, err := unescapeOptional(f[fieldContent])
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	if hasContent && uint64(len(content)) != size {
		return fmt.Errorf("content size %d does not match size %d", len(content), size)
	}
	digestHex, hasDigest, err := unescapeOptional(f[fieldDigest])
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	typ := node.Mode & tree.SIFMT
	node.Size = size
	node.Nlink = uint32(nlink)
	node.UID, node.GID = uint32(uid), uint32(gid)
	if typ == tree.SIFCHR || typ == tree.SIFBLK {
		node.Rdev = uint32(rdev)
	} else if p.opts.Strict && rdev != 0 {
		return errors.New("non-zero device number on a non-device")
	}
	node.MtimeSec, node.MtimeNsec = int64(sec), uint32(nsec)
	if typ == tree.SIFLNK {
		if len(payload) == 0 {
			return errors.New("symlink without a target")
		}
		if len(payload) > maxPayload {
			return fmt.Errorf("symlink target of %d bytes: longer than %d", len(payload), maxPayload)
		}
		if p.opts.Strict && size != uint64(len(payload)) {
			return fmt.Errorf("symlink size %d does not match its target's length %d", size, len(payload))
		}
		if p.opts.Strict && len(content) > 0 {
			return errors.New("symlink cannot have content")
		}
		node.Payload = string(payload)
		node.Size = uint64(len(payload))
	} else {
		if len(payload) > maxPayload {
			return fmt.Errorf("payload of %d bytes: longer than %d", len(payload), maxPayload)
		}
		node.Payload = string(payload)
		if hasContent {
			if len(content) > maxInlineContent {
				return fmt.Errorf("inline content of %d bytes exceeds the maximum %d", len(content), maxInlineContent)
			}
			if len(content) > 0 {
				node.Content = content
			}
		}
	}
	// An empty digest field counts as absent: the reference ignores it.
	if hasDigest && len(digestHex) > 0 {
		// 64 hex digits are SHA-256 (Digest), 128 SHA-512 (Verity).
		d, err := verity.ParseSum(string(digestHex))
		if err != nil {
			return err
		}
		if sha256, ok := d.Digest(); ok {
			node.Digest = &sha256
		} else {
			node.Verity = d
		}
	}
	if len(xattrs) > maxXattrLineLen {
		return errors.New("too many xattrs")
	}
	for len(xattrs) > 0 {
		if err := p.xattr(node, splitField(&xattrs)); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) xattr(node *tree.Node, field []byte) error {
	eq := bytes.IndexByte(field, '=')
	if eq < 0 {
		return fmt.Errorf("xattr %q: missing '='", field)
	}
	key, err := unescape(field[:eq])
	if err != nil {
		return fmt.Errorf("xattr name: %w", err)
	}
	value, err := unescape(field[eq+1:])
	if err != nil {
		return fmt.Errorf("xattr %q value: %w", key, err)
	}
	if len(key) == 0 || len(key) > maxXattrNameLen || bytes.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("invalid xattr name %q", key)
	}
	if len(value) > maxXattrValueLen {
		return fmt.Errorf("xattr %q: value of %d bytes is too long", key, len(value))
	}
	if p.xattrSize == nil {
		p.xattrSize = map[*tree.Node]int{}
	}
	// Replace an earlier value of the same name, then charge the entry
	// against the inode's budget the way the reference does.
	size := p.xattrSize[node]
	for i, x := range node.Xattrs {
		if x.Key == string(key) {
			node.Xattrs = append(node.Xattrs[:i], node.Xattrs[i+1:]...)
			size -= 7 + len(x.Key) + len(x.Value)
			if len(node.Xattrs) == 0 {
				size = 0
			}
			break
		}
	}
	entry := 7 + len(key) + len(value)
	if len(node.Xattrs) == 0 {
		entry += 12
	}
	if size+entry > maxInodeXattrSize {
		return fmt.Errorf("xattr %q: the inode's xattrs exceed %d bytes", key, maxInodeXattrSize)
	}
	p.xattrSize[node] = size + entry
	node.Xattrs = append(node.Xattrs, tree.Xattr{Key: string(key), Value: value})
	return nil
}

// add places node at path: "/" is the root; anything else needs its parent
// directory to exist already.
func (p *parser) add(path string, node *tree.Node) error {
	if path == "/" {
		if node.Mode&tree.SIFMT != tree.SIFDIR {
			return errors.New("root must be a directory")
		}
		if p.root != nil {
			return errors.New("multiple roots")
		}
		p.root = node
		return nil
	}
	if p.root == nil {
		return errors.New("root directory must come first")
	}
	parentPath, name := splitPath(path)
	parent := lookup(p.root, parentPath)
	if parent == nil {
		return fmt.Errorf("parent directory missing for %s", path)
	}
	if parent.LinkTo != nil || parent.Mode&tree.SIFMT != tree.SIFDIR {
		return fmt.Errorf("parent of %s is not a directory", path)
	}
	node.Name = name
	if err := parent.AddChild(node); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// splitPath splits off the last component; empty components (repeated
// slashes) are skipped as the reference does, but an empty final name
// (trailing slash) stays empty and is rejected by AddChild.
func splitPath(path string) (dir []string, name string) {
	parts := strings.Split(strings.TrimLeft(path, "/"), "/")
	for _, c := range parts[:len(parts)-1] {
		if c != "" {
			dir = append(dir, c)
		}
	}
	return dir, parts[len(parts)-1]
}

func lookup(n *tree.Node, parts []string) *tree.Node {
	for _, c := range parts {
		if n = n.Lookup(c); n == nil {
			return nil
		}
	}
	return n
}

func (p *parser) resolveHardlinks() error {
	for i := len(p.fixups) - 1; i >= 0; i-- {
		fx := p.fixups[i]
		dir, name := splitPath(fx.target)
		target := p.root
		if name != "" || len(dir) > 0 {
			target = lookup(p.root, append(dir, name))
		}
		if target == nil {
			return fmt.Errorf("hard link %s: no target at %s", fx.node.Path(), fx.target)
		}
		if target == fx.node {
			return fmt.Errorf("hard link %s refers to itself", fx.node.Path())
		}
		fx.node.LinkTo = target
	}
	for _, fx := range p.fixups {
		n, steps := fx.node, 0
		for ; n.LinkTo != nil && steps <= len(p.fixups); steps++ {
			n = n.LinkTo
		}
		if n.LinkTo != nil {
			return fmt.Errorf("hard link %s: cycle of hard links", fx.node.Path())
		}
		if n.Mode&tree.SIFMT == tree.SIFDIR {
			return fmt.Errorf("hard link %s: target %s is a directory", fx.node.Path(), fx.target)
		}
	}
	return nil
}

func validType(mode uint32) bool {
	switch mode & tree.SIFMT {
	case tree.SIFREG, tree.SIFDIR, tree.SIFLNK, tree.SIFBLK, tree.SIFCHR, tree.SIFSOCK, tree.SIFIFO:
		return true
	}
	return false
}

// parseUint accepts what strtoull does for a whole field: an optional sign
// and digits in base (a leading '-' negates modulo 2^64).
func parseUint(f []byte, base uint64) (uint64, error) {
	s := f
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, fmt.Errorf("invalid integer %q", f)
	}
	var v uint64
	for _, c := range s {
		d := uint64(c - '0')
		if c < '0' || d >= base {
			return 0, fmt.Errorf("invalid integer %q", f)
		}
		if v > (^uint64(0)-d)/base {
			v = ^uint64(0) // strtoull saturates
			continue
		}
		v = v*base + d
	}
	if neg {
		v = -v
	}
	return v, nil
}

func parseMtime(f []byte) (sec, nsec uint64, err error) {
	dot := bytes.IndexByte(f, '.')
	if dot < 0 {
		return 0, 0, fmt.Errorf("mtime %q: want SECONDS.NANOSECONDS", f)
	}
	if sec, err = parseUint(f[:dot], 10); err != nil {
		return 0, 0, fmt.Errorf("mtime: %w", err)
	}
	if nsec, err = parseUint(f[dot+1:], 10); err != nil {
		return 0, 0, fmt.Errorf("mtime: %w", err)
	}
	return sec, nsec, nil
}

// unescapeOptional treats a lone "-" as absent.
func unescapeOptional(f []byte) (v []byte, present bool, err error) {
	if len(f) == 1 && f[0] == '-' {
		return nil, false, nil
	}
	v, err = unescape(f)
	return v, true, err
}

func unescape(f []byte) ([]byte, error) {
	out := make([]byte, 0, len(f))
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(f) {
			return nil, errors.New("no character after escape")
		}
		switch f[i] {
		case '\\':
			out = append(out, '\\')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(f) {
				return nil, errors.New("no hex characters after hex escape")
			}
			hi, lo := hexVal(f[i+1]), hexVal(f[i+2])
			if hi < 0 || lo < 0 {
				return nil, errors.New("invalid hex characters after hex escape")
			}
			out = append(out, byte(hi<<4|lo))
			i += 2
		default:
			return nil, fmt.Errorf("unsupported escape \\%c", f[i])
		}
	}
	return out, nil
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
