package setuproot

import (
	"strings"
	"testing"
)

func TestParseAccepted(t *testing.T) {
	for _, c := range []struct {
		text          string
		etc, vr       MountType
		rootTransient bool
	}{
		{"", Overlay, Bind, false},
		{"# nothing\n\n", Overlay, Bind, false},
		{"[etc]\nmount = \"transient\"\n", Transient, Bind, false},
		{"[etc]\ntransient = true\n[var]\nmount='overlay' # comment\n", Transient, Overlay, false},
		// mount= wins over transient=, as in composefs-setup-root.
		{"[etc]\nmount = \"bind\"\ntransient = true\n", Bind, Bind, false},
		{"[var]\nmount = \"none\"\n[root]\ntransient = true\n", Overlay, None, true},
		// bootc's aliases.
		{"[etc]\nmount = \"volatile\"\n[var]\nmount = \"root\"\n", Transient, None, false},
		// Unknown keys are ignored; CRLF and spaces are fine.
		{"  [ etc ]  \r\n  mount=\"overlay\"\r\nextra = 12\nname = \"x # y\"\n", Overlay, Bind, false},
		{"[root]\ntransient = false\n", Overlay, Bind, false},
	} {
		got, err := Parse([]byte(c.text))
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if got.EtcMount() != c.etc || got.VarMount() != c.vr || got.RootTransient != c.rootTransient {
			t.Errorf("%q: etc %s var %s root transient %v, want %s %s %v", c.text, got.EtcMount(), got.VarMount(), got.RootTransient, c.etc, c.vr, c.rootTransient)
		}
	}
}

func TestParseRejected(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"mount = \"bind\"\n", "line 1: mount = \"bind\": key outside a table"},
		{"[usr]\n", "unknown table"},
		{"[etc]\n[etc]\n", "line 2: [etc]: table [etc] defined twice"},
		{"[[etc]]\n", "want a table header"},
		{"[etc\n", "want a table header"},
		{"[etc]\nmount = bind\n", "want a quoted string"},
		{"[etc]\nmount = \"tmpfs\"\n", `unknown mount type "tmpfs"`},
		{"[etc]\nmount = \"bind\nx\"\n", "want a quoted string"},
		{"[etc]\ntransient = yes\n", "want true or false"},
		{"[root]\ntransient = 1\n", "want true or false"},
		{"[etc]\nmount = \"bind\"\nmount = \"none\"\n", "key mount set twice"},
		{"[etc]\nmount\n", "want key = value"},
		{"[etc]\n\"mount\" = \"bind\"\n", "want key = value"},
		{"[etc]\netc.mount = \"bind\"\n", "want key = value"},
		{"[etc]\nother = [1, 2]\n", "value not understood"},
		{"[etc]\nmount = \"bi\\u006ed\"\n", "want a quoted string"},
	} {
		_, err := Parse([]byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.text, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("[etc]\nmount = \"transient\"\n[var]\ntransient = true\n[root]\ntransient = false\n")
	f.Add("# c\n[etc]\nmount='none' # x\nother = -1_000\n")
	f.Add("[var]\nmount = \"volatile\"\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse([]byte(text))
		if err != nil {
			return
		}
		for _, m := range []MountType{c.EtcMount(), c.VarMount()} {
			switch m {
			case None, Bind, Overlay, Transient:
			default:
				t.Fatalf("%q: mount type %q", text, m)
			}
		}
	})
}
