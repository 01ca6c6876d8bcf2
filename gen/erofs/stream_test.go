package erofs_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
)

// manyFiles is a tree whose image is several times WriteImage's buffer.
func manyFiles(t *testing.T) *tree.Node {
	var b strings.Builder
	b.WriteString("/ 0 40755 2 0 0 0 100.5 - - -\n")
	for d := 0; d < 30; d++ {
		fmt.Fprintf(&b, "/d%d 0 40755 2 0 0 0 100.5 - - -\n", d)
		for f := 0; f < 200; f++ {
			h := fmt.Sprintf("%064x", d*1000+f)
			fmt.Fprintf(&b, "/d%d/file-%d 5000 100644 1 0 0 0 100.5 %s/%s - %s user.n=%d\n", d, f, h[:2], h[2:], h, f%7)
		}
	}
	root, err := dump.Parse(strings.NewReader(b.String()), dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// WriteImage writes the bytes Build returns, in every format.
func TestWriteImageIsBuild(t *testing.T) {
	for name, root := range map[string]*tree.Node{"rich": richTree(t), "many": manyFiles(t)} {
		for _, f := range erofs.Formats {
			want, err := erofs.Build(root, f.Options())
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			n, err := erofs.WriteImage(&got, root, f.Options())
			if err != nil || n != int64(len(want)) || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s %s: WriteImage wrote %d bytes (%v), equal %v; Build %d", name, f, n, err, bytes.Equal(got.Bytes(), want), len(want))
			}
		}
	}
}

// WriteImageConsuming writes the same bytes, and empties the tree's
// directories, hard links included.
func TestWriteImageConsuming(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) *tree.Node{"rich": func(t *testing.T) *tree.Node { return richTree(t) }, "many": manyFiles} {
		for _, f := range erofs.Formats {
			want, err := erofs.Build(mk(t), f.Options())
			if err != nil {
				t.Fatal(err)
			}
			root := mk(t)
			var got bytes.Buffer
			if _, err := erofs.WriteImageConsuming(&got, root, f.Options()); err != nil || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s %s: %v, same bytes as Build: %v", name, f, err, bytes.Equal(got.Bytes(), want))
			}
			if len(root.Children) != 0 {
				t.Errorf("%s %s: the root still has %d children", name, f, len(root.Children))
			}
		}
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.left < len(p) {
		return 0, errors.New("disk full")
	}
	w.left -= len(p)
	return len(p), nil
}

func TestWriteImageError(t *testing.T) {
	_, err := erofs.WriteImage(&failingWriter{left: 300 << 10}, manyFiles(t), erofs.DefaultOptions())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v, want the writer's error", err)
	}
}
