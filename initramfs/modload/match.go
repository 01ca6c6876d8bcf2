package modload

// Match reports whether s matches pattern as fnmatch(3) without flags
// matches (modules.alias patterns are fnmatch patterns, as udev and kmod
// read them): '*' any string, '/' included; '?' any byte; '[...]' one
// byte of a set with ranges, negated by a leading '!' or '^', a ']' first
// in the set taken literally; '\' quotes the next byte. A '[' without its
// ']' is a literal '[', as in glibc. Modaliases are ASCII: it works on
// bytes.
func Match(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0 // after the last '*': where to retry with one more byte eaten
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p+1, i
				p++
				continue
			case '?':
				p, i = p+1, i+1
				continue
			case '[':
				if end, ok := classEnd(pattern, p); ok {
					if inClass(pattern[p+1:end], s[i]) {
						p, i = end+1, i+1
						continue
					}
					break
				}
				if s[i] == '[' {
					p, i = p+1, i+1
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					c = pattern[p+1]
					if s[i] == c {
						p, i = p+2, i+1
						continue
					}
					break
				}
				fallthrough
			default:
				if s[i] == c {
					p, i = p+1, i+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// classEnd returns the index of the ']' that closes the set opening at
// pattern[open] ('['), skipping a leading '!' or '^', a ']' first in the
// set, and quoted bytes.
func classEnd(pattern string, open int) (int, bool) {
	j := open + 1
	if j < len(pattern) && (pattern[j] == '!' || pattern[j] == '^') {
		j++
	}
	if j < len(pattern) && pattern[j] == ']' {
		j++
	}
	for ; j < len(pattern); j++ {
		switch pattern[j] {
		case '\\':
			j++
		case ']':
			return j, true
		}
	}
	return 0, false
}

// inClass reports whether b is in the set (the text between '[' and ']').
func inClass(set string, b byte) bool {
	negate := len(set) > 0 && (set[0] == '!' || set[0] == '^')
	if negate {
		set = set[1:]
	}
	in := false
	for k := 0; k < len(set); {
		lo, n := classByte(set, k)
		k += n
		hi := lo
		// A '-' between two bytes is a range; first or last it is itself.
		if k+1 < len(set) && set[k] == '-' {
			hi, n = classByte(set, k+1)
			k += 1 + n
		}
		if lo <= b && b <= hi {
			in = true
		}
	}
	return in != negate
}

// classByte reads one, possibly quoted, byte of a set at k and how many
// bytes of set it took.
func classByte(set string, k int) (byte, int) {
	if set[k] == '\\' && k+1 < len(set) {
		return set[k+1], 2
	}
	return set[k], 1
}
