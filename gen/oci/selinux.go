package oci

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"cfsboot/gen/tree"
)

// xattrSELinux holds a file's SELinux label.
const xattrSELinux = "security.selinux"

// selinuxFileCap bounds one captured policy file (Fedora's file_contexts
// is about 1 MiB).
const selinuxFileCap = 32 << 20

// isSELinuxPolicyFile reports whether the path is one the bootable
// transform may read: /etc/selinux/config, or a file_contexts* file of
// /etc/selinux/<type>/contexts/files/. Their contents are kept in memory
// while the layers are applied, since the sink may not give them back.
func isSELinuxPolicyFile(parts []string) bool {
	switch {
	case len(parts) == 3 && parts[0] == "etc" && parts[1] == "selinux" && parts[2] == "config":
		return true
	case len(parts) == 6 && parts[0] == "etc" && parts[1] == "selinux" && parts[3] == "contexts" && parts[4] == "files":
		return strings.HasPrefix(parts[5], "file_contexts")
	}
	return false
}

// selinuxPolicy is what composefs-boot's selabel reads of a policy: the
// file_contexts specs (the last matching one wins) and the exact-path
// aliases of file_contexts.subs and .subs_dist.
type selinuxPolicy struct {
	aliases map[string]string
	specs   []selinuxSpec
	index   prefixTrie
}

type selinuxSpec struct {
	re      *regexp.Regexp
	literal string // text every match contains
	context string // "<<none>>": no label
}

// loadSELinuxPolicy finds the policy as composefs-boot does: none without
// /etc/selinux, its config, or a SELINUXTYPE line; then file_contexts
// (required), .local and .homedirs, .subs and .subs_dist from
// /etc/selinux/<type>/contexts/files.
func (fs *rootfs) loadSELinuxPolicy() (*selinuxPolicy, error) {
	config, err := fs.policyFile("etc/selinux/config")
	if config == nil || err != nil {
		return nil, err
	}
	policyType := ""
	for _, line := range strings.Split(string(config), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.EqualFold(strings.TrimSpace(k), "SELINUXTYPE") {
			policyType = strings.TrimSpace(v)
			break
		}
	}
	if policyType == "" {
		return nil, nil
	}
	if err := tree.ValidName(policyType); err != nil {
		return nil, fmt.Errorf("/etc/selinux/config: SELINUXTYPE: %w", err)
	}
	dir := "etc/selinux/" + policyType + "/contexts/files/"
	p := &selinuxPolicy{aliases: map[string]string{}}
	for _, suffix := range []string{"", ".local", ".homedirs"} {
		data, err := fs.policyFile(dir + "file_contexts" + suffix)
		if err != nil {
			return nil, err
		}
		if data == nil && suffix == "" {
			return nil, fmt.Errorf("SELinux policy %s has no /%sfile_contexts", policyType, dir)
		}
		if err := p.addSpecs(data); err != nil {
			return nil, fmt.Errorf("/%sfile_contexts%s: %w", dir, suffix, err)
		}
	}
	for _, suffix := range []string{".subs", ".subs_dist"} {
		data, err := fs.policyFile(dir + "file_contexts" + suffix)
		if err != nil {
			return nil, err
		}
		if err := p.addAliases(data); err != nil {
			return nil, fmt.Errorf("/%sfile_contexts%s: %w", dir, suffix, err)
		}
	}
	return p, nil
}

// policyFile returns the captured content of the regular file at path, or
// nil when there is none. Directories on the way must be real ones.
func (fs *rootfs) policyFile(path string) ([]byte, error) {
	parts := strings.Split(path, "/")
	e, err := fs.lookup(parts)
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", path, err)
	}
	if e == nil {
		return nil, nil
	}
	if e.ino.meta.Mode&tree.SIFMT != tree.SIFREG {
		return nil, fmt.Errorf("/%s: not a regular file", path)
	}
	if e.ino.meta.Size == 0 {
		return []byte{}, nil
	}
	if e.ino.meta.Content != nil {
		return e.ino.meta.Content, nil
	}
	data, ok := fs.captured[e.ino]
	if !ok {
		return nil, fmt.Errorf("/%s: larger than %d bytes", path, selinuxFileCap)
	}
	return data, nil
}

// addSpecs parses file_contexts lines "REGEX [-TYPE] CONTEXT". The regex
// must match a whole path followed by the file type character of
// selabel_file(5) ('-' regular, 'd', 'l', 'c', 'b', 'p', 's'); without a
// type any type matches.
func (p *selinuxPolicy) addSpecs(data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		re, typ, rest := fields[0], ".", fields[1:]
		if len(rest) == 0 {
			return fmt.Errorf("line %d: no context after the regex", n)
		}
		if code, ok := strings.CutPrefix(rest[0], "-"); ok {
			if len(code) != 1 || strings.IndexByte("bcdpls-", code[0]) < 0 {
				return fmt.Errorf("line %d: invalid type code %q", n, rest[0])
			}
			typ, rest = code, rest[1:]
			if len(rest) == 0 {
				return fmt.Errorf("line %d: no context after the type", n)
			}
		}
		if len(rest) > 1 {
			return fmt.Errorf("line %d: trailing data", n)
		}
		context := rest[0]
		compiled, err := regexp.Compile("^(" + re + ")" + typ + "$")
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		prefix, literal := literals(re)
		p.index.add(prefix, len(p.specs))
		p.specs = append(p.specs, selinuxSpec{re: compiled, literal: literal, context: context})
	}
	return sc.Err()
}

// addAliases parses file_contexts.subs lines "ALIAS ORIGINAL".
func (p *selinuxPolicy) addAliases(data []byte) error {
	for n, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			return fmt.Errorf("line %d: want ALIAS ORIGINAL", n+1)
		}
		p.aliases[fields[0]] = fields[1]
	}
	return nil
}

// lookup returns the label of path for file type character typ, and
// whether there is one.
func (p *selinuxPolicy) lookup(path string, typ byte) (string, bool) {
	key := path + string(typ)
	candidates := p.index.candidates(key)
	sort.Sort(sort.Reverse(sort.IntSlice(candidates)))
	for _, i := range candidates {
		if spec := p.specs[i]; strings.Contains(key, spec.literal) && spec.re.MatchString(key) {
			if c := p.specs[i].context; c != "<<none>>" {
				return c, true
			}
			return "", false
		}
	}
	return "", false
}

// literals returns the literal text every match of a file_contexts regex
// starts with, and the longest literal text every match contains: only
// specs whose prefix starts a path, and whose literal the path contains,
// need their regex run. Both are empty when the regex has a top-level
// alternative.
func literals(re string) (prefix, longest string) {
	if hasTopLevelAlternative(re) {
		return "", ""
	}
	var run []byte
	inPrefix, depth := true, 0
	end := func() {
		if inPrefix {
			prefix, inPrefix = string(run), false
		}
		if len(run) > len(longest) {
			longest = string(run)
		}
		run = run[:0]
	}
	for i := 0; i < len(re); i++ {
		c, literal := re[i], false
		switch {
		case c == '\\' && i+1 < len(re) && !isAlnum(re[i+1]):
			c, literal = re[i+1], depth == 0
			i++
		case c == '\\':
			i++ // a class escape such as \d
		case c == '[':
			// Skip the class; a ']' first in it is a member.
			if i++; i < len(re) && re[i] == '^' {
				i++
			}
			if i < len(re) && re[i] == ']' {
				i++
			}
			for ; i < len(re) && re[i] != ']'; i++ {
				if re[i] == '\\' {
					i++
				}
			}
		case c == '{':
			for i < len(re) && re[i] != '}' {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
		case strings.IndexByte(`.^$|*+?}`, c) >= 0:
		default:
			literal = depth == 0
		}
		if literal && i+1 < len(re) && strings.IndexByte("?*{", re[i+1]) >= 0 {
			literal = false // the quantifier makes it optional
		}
		if literal {
			run = append(run, c)
		} else {
			end()
		}
	}
	end()
	return prefix, longest
}

// hasTopLevelAlternative reports a '|' outside groups and classes.
func hasTopLevelAlternative(re string) bool {
	depth, inClass := 0, false
	for i := 0; i < len(re); i++ {
		switch c := re[i]; {
		case c == '\\':
			i++
		case inClass:
			inClass = c != ']'
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			return true
		}
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// prefixTrie finds the specs whose literal prefix starts a key.
type prefixTrie struct {
	specs []int
	next  map[byte]*prefixTrie
}

func (t *prefixTrie) add(prefix string, spec int) {
	for i := 0; i < len(prefix); i++ {
		if t.next == nil {
			t.next = map[byte]*prefixTrie{}
		}
		n := t.next[prefix[i]]
		if n == nil {
			n = &prefixTrie{}
			t.next[prefix[i]] = n
		}
		t = n
	}
	t.specs = append(t.specs, spec)
}

func (t *prefixTrie) candidates(key string) []int {
	var out []int
	for i := 0; t != nil; i++ {
		out = append(out, t.specs...)
		if i == len(key) {
			break
		}
		t = t.next[key[i]]
	}
	return out
}

// selabel labels every inode as composefs-boot does: paths are absolute
// ("/" for the root), an exact alias replaces a path (and so the prefix of
// everything below a directory), and a file's label is that of its first
// name; a later name whose label differs gets its own copy of the inode.
func (fs *rootfs) selabel(p *selinuxPolicy) {
	labels := map[*inode]string{} // first label committed to a non-directory
	var walk func(dir *inode, path string)
	walk = func(dir *inode, path string) {
		label, ok := p.lookup(path, 'd')
		setLabel(dir, label, ok)
		names := make([]string, 0, len(dir.children))
		for name := range dir.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			e := dir.children[name]
			childPath := strings.TrimSuffix(path, "/") + "/" + name
			if alias, ok := p.aliases[childPath]; ok {
				childPath = alias
			}
			if e.ino.isDir() {
				walk(e.ino, childPath)
				continue
			}
			typ := fileTypeChar(e.ino.meta.Mode)
			label, ok := p.lookup(childPath, typ)
			if prev, seen := labels[e.ino]; seen && prev != label {
				clone := &inode{meta: e.ino.meta}
				clone.meta.Xattrs = slices.Clone(e.ino.meta.Xattrs)
				e.ino = clone
			}
			setLabel(e.ino, label, ok)
			if _, seen := labels[e.ino]; !seen {
				labels[e.ino] = label
			}
		}
	}
	walk(fs.root.ino, "/")
}

// setLabel sets (ok) or removes the security.selinux xattr of i.
func setLabel(i *inode, label string, ok bool) {
	i.meta.Xattrs = slices.DeleteFunc(i.meta.Xattrs, func(x tree.Xattr) bool { return x.Key == xattrSELinux })
	if ok {
		i.meta.Xattrs = append(i.meta.Xattrs, tree.Xattr{Key: xattrSELinux, Value: []byte(label)})
		sort.Slice(i.meta.Xattrs, func(a, b int) bool { return i.meta.Xattrs[a].Key < i.meta.Xattrs[b].Key })
	}
}

// fileTypeChar is selabel_file(5)'s character for a file type.
func fileTypeChar(mode uint32) byte {
	switch mode & tree.SIFMT {
	case tree.SIFDIR:
		return 'd'
	case tree.SIFLNK:
		return 'l'
	case tree.SIFCHR:
		return 'c'
	case tree.SIFBLK:
		return 'b'
	case tree.SIFIFO:
		return 'p'
	case tree.SIFSOCK:
		return 's'
	}
	return '-'
}
