package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// cli runs one command line in-process and returns its exit code and output.
func cli(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/big"), []byte(strings.Repeat("x", 5000)), 0o644)
	store := filepath.Join(dir, "store")
	img := filepath.Join(dir, "img")
	code, out, errOut := cli("image", "create", src, "--store", store, "-o", img, "--use-epoch")
	if code != 0 {
		t.Fatalf("image create: %d %s", code, errOut)
	}
	digest := strings.TrimSpace(out)
	if _, err := os.Stat(filepath.Join(store, "images", digest)); err != nil {
		t.Fatalf("image not in store: %s", out)
	}
	if code, out, _ := cli("image", "digest", img); code != 0 || out != "sha256:"+digest+" "+img+"\n" {
		t.Fatalf("image digest: %q %d", out, code)
	}
	if code, out, _ := cli("image", "digest", "--hash", "sha512", img); code != 0 || !strings.HasPrefix(out, "sha512:") || len(out) != len("sha512:")+128+1+len(img)+1 {
		t.Fatalf("image digest --hash sha512: %q %d", out, code)
	}
	v2 := filepath.Join(dir, "v2")
	if code, _, errOut := cli("image", "create", src, "--format", "v2", "-o", v2); code != 0 {
		t.Fatalf("image create --format v2: %s", errOut)
	}
	if code, out, _ := cli("image", "dump", v2); code != 0 || !strings.Contains(out, "/etc/big 5000 100644 1 0 0 0 ") {
		t.Fatalf("image dump of v2: %q %d", out, code)
	}
	if code, out, _ := cli("image", "dump", img); code != 0 || !strings.Contains(out, "/etc/big 5000 100644 1 0 0 0 0.0 ") {
		t.Fatalf("image dump: %q %d", out, code)
	}
	if code, out, _ := cli("store", "fsck", "--store", store); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("fsck: %q %d", out, code)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"image", "create", filepath.Join(dir, "nope")}, exitFailure, "nope: no such file"},
		{[]string{"image", "dump", filepath.Join(src, "etc/big")}, exitFailure, "big: not a composefs image"},
		{[]string{"image", "create", "--from-dump", filepath.Join(src, "etc/big")}, exitFailure, "big: dump: line 1"},
		{[]string{"image", "create", src, "--from-dump", img}, exitUsage, "either one SRC_DIR or --from-dump"},
		{[]string{"image", "create"}, exitUsage, "either one SRC_DIR or --from-dump"},
		{[]string{"image", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"image"}, exitUsage, "missing subcommand"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"store", "fsck"}, exitUsage, `required flag(s) "store" not set`},
		{[]string{"pcr", "predict", "--composefs", "xyz"}, exitUsage, "want 64 (sha256) or 128 (sha512) hex digits"},
		{[]string{"pcr", "predict", "--composefs", digest, "--uki", img}, exitUsage, "none of the others can be"},
		{[]string{"pcr", "predict"}, exitUsage, "at least one of the flags"},
		{[]string{"pcr", "predict", "--composefs", digest, "--banks", "md5"}, exitUsage, "unknown bank"},
		{[]string{"pcr", "read", "--pcr", "24"}, exitUsage, `bad PCR "24"`},
		{[]string{"initramfs", "-o", filepath.Join(dir, "i"), "--init", filepath.Join(dir, "noinit")}, exitFailure, "init binary"},
		{[]string{"image", "digest"}, exitUsage, "want at least 1 FILE"},
		{[]string{"image", "digest", "--hash", "md5", img}, exitUsage, `"md5"`},
		{[]string{"image", "create", src, "--format", "v3"}, exitUsage, "want v0, v1 or v2"},
		{[]string{"image", "create", src, "--format", "v1", "--min-version", "1"}, exitUsage, "none of the others can be"},
	} {
		code, _, errOut := cli(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("cfsboot %s: exit %d %q, want exit %d with %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
	}
	// A damaged object makes fsck fail with exit status 1 and name it.
	objs, _ := filepath.Glob(filepath.Join(store, "objects", "*", "*"))
	os.WriteFile(objs[0], []byte("tampered"), 0o644)
	if code, out, _ := cli("store", "fsck", "--store", store); code != exitFailure || !strings.Contains(out, objs[0]) {
		t.Fatalf("fsck of a damaged store: %q %d", out, code)
	}
}

// walk calls fn for every command of the tree.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// TestEveryCommand checks the whole command tree: --help exits 0 and names
// every flag, and an unknown flag is a usage error (exit 2).
func TestEveryCommand(t *testing.T) {
	n := 0
	walk(newRootCmd(), func(c *cobra.Command) {
		n++
		path := strings.Fields(c.CommandPath())[1:]
		code, out, errOut := cli(append(path, "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d: %s", c.CommandPath(), code, errOut)
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(out, "--"+f.Name) {
				t.Errorf("%s --help does not name --%s", c.CommandPath(), f.Name)
			}
		})
		if !c.HasSubCommands() && c.Short == "" {
			t.Errorf("%s has no summary", c.CommandPath())
		}
		if c.Runnable() && !c.Hidden && !c.HasSubCommands() && c.Example == "" && c.HasParent() && c.Parent().Name() != "completion" && c.Name() != "help" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		if code, _, errOut := cli(append(path, "--no-such-flag")...); code != exitUsage || !strings.Contains(errOut, "unknown flag: --no-such-flag") {
			t.Errorf("%s --no-such-flag: exit %d %q, want a usage error", c.CommandPath(), code, errOut)
		}
	})
	if n < 15 {
		t.Errorf("walked %d commands", n)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := cli(args...)
		if code != 0 || !strings.HasPrefix(out, "cfsboot ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	if code, out, _ := cli("version", "--json"); code != 0 || !strings.Contains(out, `"go": "go1.`) {
		t.Errorf("version --json: %d %q", code, out)
	}
}

// TestCompletion checks that the generated shell completions parse.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := cli("completion", shell)
		if code != 0 || len(out) < 1000 {
			t.Fatalf("completion %s: %d %s", shell, code, errOut)
		}
		check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}[shell]
		if _, err := exec.LookPath(check[0]); err != nil {
			if shell == "bash" {
				t.Fatal("bash not found")
			}
			continue // zsh and fish are optional on the test machine
		}
		f := filepath.Join(t.TempDir(), "c")
		os.WriteFile(f, []byte(out), 0o644)
		if o, err := exec.Command(check[0], append(check[1:], f)...).CombinedOutput(); err != nil {
			t.Errorf("%s completion does not parse: %v\n%s", shell, err, o)
		}
	}
}

// TestManPages renders every generated man page with man(1) and fails on
// any warning.
func TestManPages(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man (man-db) is not installed; make deps installs it")
	}
	dir := t.TempDir()
	if code, _, errOut := cli("docs", "man", dir); code != 0 {
		t.Fatalf("docs man: %s", errOut)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) < 15 {
		t.Fatalf("%d man pages", len(pages))
	}
	for _, p := range pages {
		cmd := exec.Command("man", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "MAN_KEEP_FORMATTING=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v\n%s", filepath.Base(p), err, stderr.String())
		}
	}
}

// TestReadmeReference fails when the README's CLI reference differs from
// the commands' own help (`make readme` regenerates it).
func TestReadmeReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := readmeReference(string(readme))
	if !ok {
		t.Fatal("README.md has no generated CLI reference section")
	}
	_, want, _ := cli("docs", "reference")
	if got != want {
		t.Errorf("README.md's CLI reference is stale: run `make readme`")
	}
}

// progressLine matches what a progress bar draws.
var progressLine = regexp.MustCompile(`\d+/\d+ files|\r`)

// TestProgressOnTerminal: long commands draw progress on a terminal's
// stderr, and write nothing there when stderr is a pipe or with --quiet.
func TestProgressOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	for i := range 50 {
		os.WriteFile(filepath.Join(src, fmt.Sprint(i)), bytes.Repeat([]byte{byte(i)}, 100<<10), 0o644)
	}
	store := filepath.Join(t.TempDir(), "store")
	drawn := make(chan string)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				drawn <- string(all)
				return
			}
		}
	}()
	for _, args := range [][]string{{"image", "create", src}, {"image", "create", src, "--store", store}, {"store", "fsck", "--store", store}} {
		var out bytes.Buffer
		if code := run(args, &out, tty); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		var pipe bytes.Buffer
		if code := run(args, &out, &pipe); code != 0 || progressLine.MatchString(pipe.String()) {
			t.Errorf("%v with stderr not a terminal: exit %d, stderr %q", args, code, pipe.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"--quiet", "image", "create", src}, &out, tty); code != 0 {
		t.Fatal("--quiet image create failed")
	}
	tty.Close()
	got := <-drawn
	if strings.Count(got, "hashing 1/50 files") != 1 {
		t.Errorf("--quiet still drew progress (or the first run did not): %q", got)
	}
	for _, want := range []string{"hashing 1/50 files", "storing 1/50 files", "checking 1/51 files"} { // first draws; later ones are throttled
		if !strings.Contains(got, want) {
			t.Errorf("terminal never showed %q:\n%q", want, got)
		}
	}
}
