package oci

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeLayout writes img into a new OCI layout, tagged tag if not empty.
func writeLayout(t testing.TB, img v1.Image, tag string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tarDir writes the files below dir into a tar archive at file.
func tarDir(t testing.TB, dir, file string) {
	t.Helper()
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// serveRegistry runs the in-memory registry on 127.0.0.1 and returns its
// host:port.
func serveRegistry(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// The same image from a layout, an oci-archive, a docker-archive and a
// registry (by tag and by digest) gives the same composefs digest.
func TestSourcesAgree(t *testing.T) {
	l1, l2 := twoLayerImage(t)
	rnd, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	rndLayers, err := rnd.Layers()
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(imageOf(t, gzipLayer(t, l1), zstdLayer(t, l2)), rndLayers...)
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img, Options{})

	tmp := t.TempDir()
	dir := writeLayout(t, img, "v1")
	tarDir(t, dir, filepath.Join(tmp, "oci.tar"))
	ref, err := name.ParseReference("example.org/test:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(tmp, "docker.tar"), ref, img); err != nil {
		t.Fatal(err)
	}
	host := serveRegistry(t)
	regRef, err := name.ParseReference(host + "/test/image:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(regRef, img); err != nil {
		t.Fatal(err)
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	for _, src := range []string{
		"oci:" + dir,
		"oci:" + dir + ":v1",
		"oci-archive:" + filepath.Join(tmp, "oci.tar") + ":v1",
		"docker-archive:" + filepath.Join(tmp, "docker.tar"),
		"docker://" + host + "/test/image:v1",
		"docker://" + host + "/test/image@" + manifestDigest.String(),
	} {
		t.Run(src, func(t *testing.T) {
			opened, closeFn, err := Open(src, SourceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if got := digestOf(t, opened, Options{}); got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		})
	}

	for _, tc := range []struct{ src, want string }{
		{"oci:" + dir + ":v2", `no image tagged "v2"`},
		{"oci:" + tmp, "oci layout"},
		{"docker://" + host + "/test/missing:v1", "registry image"},
		{"nonsense", "want TRANSPORT"},
		{"ftp:x", "unknown transport"},
	} {
		if _, _, err := Open(tc.src, SourceOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): error %v, want %q", tc.src, err, tc.want)
		}
	}
}

// A multi-platform index resolves to the requested platform, in a layout
// and in a registry.
func TestPlatformSelection(t *testing.T) {
	amd := imageOfTars(t, tarOf(t, file("arch", "amd64")))
	arm := imageOfTars(t, tarOf(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	host := serveRegistry(t)
	ref, _ := name.ParseReference(host + "/multi:latest")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"oci:" + dir, "docker://" + host + "/multi:latest"} {
		for _, arch := range []string{"amd64", "arm64"} {
			opts := SourceOptions{}
			if arch != "amd64" {
				opts.Platform = v1.Platform{OS: "linux", Architecture: arch}
			}
			img, closeFn, err := Open(src, opts)
			if err != nil {
				t.Fatalf("%s %s: %v", src, arch, err)
			}
			res, err := Import(img, Options{})
			closeFn()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.Tree.Lookup("arch").Content); got != arch {
				t.Errorf("%s for %s: got the %s image", src, arch, got)
			}
		}
	}
	_, _, err = Open("oci:"+dir, SourceOptions{Platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x") {
		t.Errorf("error %v, want no image for linux/s390x", err)
	}

	// A changed index blob is caught before any of its descriptors is used.
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, append(data, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err = Open("oci:"+dir, SourceOptions{}); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("changed index: error %v, want a digest mismatch", err)
	}
}

// Credentials come from the keychain: a registry that demands basic auth
// accepts the import when REGISTRY_AUTH_FILE names them.
func TestRegistryAuthFile(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	auth := filepath.Join(t.TempDir(), "auth.json")
	// base64("user:secret")
	if err := os.WriteFile(auth, []byte(`{"auths":{"`+host+`":{"auth":"dXNlcjpzZWNyZXQ="}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("REGISTRY_AUTH_FILE", auth)
	img := imageOfTars(t, tarOf(t, file("hello", "world")))
	ref, _ := name.ParseReference(host + "/private:v1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "user", Password: "secret"})); err != nil {
		t.Fatal(err)
	}
	opened, _, err := Open("docker://"+host+"/private:v1", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Import(opened, Options{}); err != nil || string(res.Tree.Lookup("hello").Content) != "world" {
		t.Errorf("import through auth: %v", err)
	}
	os.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	if _, _, err := Open("docker://"+host+"/private:v1", SourceOptions{}); err == nil {
		t.Error("no credentials: the registry let the pull through")
	}
}

// A registry with a certificate nobody trusts is refused unless
// --insecure-registry asks otherwise.
func TestInsecureRegistry(t *testing.T) {
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ref, _ := name.ParseReference(host + "/tls:v1")
	img := imageOfTars(t, tarOf(t, file("hello", "tls")))
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open("docker://"+host+"/tls:v1", SourceOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: error %v, want a certificate error", err)
	}
	opened, _, err := Open("docker://"+host+"/tls:v1", SourceOptions{InsecureRegistry: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Import(opened, Options{}); err != nil || string(res.Tree.Lookup("hello").Content) != "tls" {
		t.Errorf("insecure import: %v", err)
	}
}
