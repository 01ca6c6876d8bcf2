package oci

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// SourceOptions choose among what a source offers.
type SourceOptions struct {
	Platform         v1.Platform // default linux/amd64
	InsecureRegistry bool        // allow plain HTTP and unverified TLS
	// Keychain finds registry credentials; nil means authn.DefaultKeychain
	// (~/.docker/config.json, $DOCKER_CONFIG, $REGISTRY_AUTH_FILE,
	// containers' auth.json).
	Keychain authn.Keychain
}

// DefaultPlatform is the platform chosen from multi-platform images.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Open resolves a source string, in skopeo's transport syntax:
//
//	oci:DIR[:TAG]            an OCI image layout directory
//	oci-archive:FILE[:TAG]   a tar of an OCI image layout
//	docker-archive:FILE      a `docker save` tarball (one image)
//	docker://REFERENCE       a registry (HOST/REPO:TAG or HOST/REPO@DIGEST)
//
// The returned close function releases what Open made (oci-archive's
// unpacked layout); call it when done with the image.
func Open(src string, opts SourceOptions) (v1.Image, func() error, error) {
	if opts.Platform.OS == "" {
		opts.Platform = DefaultPlatform
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	nop := func() error { return nil }
	transport, rest, ok := strings.Cut(src, ":")
	if !ok {
		return nil, nil, fmt.Errorf("source %q: want TRANSPORT:..., one of oci:, oci-archive:, docker-archive:, docker://", src)
	}
	switch transport {
	case "oci":
		dir, tag := splitTag(rest)
		img, err := fromLayout(dir, tag, opts.Platform)
		return img, nop, err
	case "oci-archive":
		file, tag := splitTag(rest)
		dir, err := os.MkdirTemp("", "cfsboot-oci-archive-")
		if err != nil {
			return nil, nil, err
		}
		cleanup := func() error { return os.RemoveAll(dir) }
		if err := unpackLayoutArchive(file, dir); err != nil {
			cleanup()
			return nil, nil, err
		}
		img, err := fromLayout(dir, tag, opts.Platform)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("oci-archive %s: %w", file, err)
		}
		return img, cleanup, nil
	case "docker-archive":
		img, err := tarball.ImageFromPath(rest, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("docker-archive %s: %w", rest, err)
		}
		return img, nop, nil
	case "docker":
		ref := strings.TrimPrefix(rest, "//")
		var nameOpts []name.Option
		remoteOpts := []remote.Option{remote.WithAuthFromKeychain(opts.Keychain), remote.WithPlatform(opts.Platform)}
		if opts.InsecureRegistry {
			nameOpts = append(nameOpts, name.Insecure)
			t := remote.DefaultTransport.(*http.Transport).Clone()
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
			remoteOpts = append(remoteOpts, remote.WithTransport(t))
		}
		r, err := name.ParseReference(ref, nameOpts...)
		if err != nil {
			return nil, nil, fmt.Errorf("source %q: %w", src, err)
		}
		img, err := remote.Image(r, remoteOpts...)
		if err != nil {
			return nil, nil, fmt.Errorf("registry image %s: %w", r, err)
		}
		return img, nop, nil
	}
	return nil, nil, fmt.Errorf("source %q: unknown transport %q (oci, oci-archive, docker-archive, docker)", src, transport)
}

// splitTag splits "PATH[:TAG]"; a colon followed by a slash belongs to the
// path.
func splitTag(s string) (path, tag string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// fromLayout picks the image named tag (the org.opencontainers.image.ref.name
// annotation) from a layout, or its only image when tag is empty, resolving
// image indexes by platform.
func fromLayout(dir, tag string, platform v1.Platform) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: index.json: %w", dir, err)
	}
	var picked []v1.Descriptor
	for _, d := range im.Manifests {
		if tag == "" || d.Annotations["org.opencontainers.image.ref.name"] == tag {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0 && tag != "":
		return nil, fmt.Errorf("oci layout %s: no image tagged %q", dir, tag)
	case len(picked) == 0:
		return nil, fmt.Errorf("oci layout %s: no images", dir)
	case len(picked) > 1:
		return nil, fmt.Errorf("oci layout %s: %d images, name one with :TAG", dir, len(picked))
	}
	return imageFor(idx, picked[0], platform, fmt.Sprintf("oci layout %s", dir))
}

// imageFor resolves d to an image, descending into indexes by platform.
func imageFor(idx v1.ImageIndex, d v1.Descriptor, platform v1.Platform, where string) (v1.Image, error) {
	for depth := 0; ; depth++ {
		if depth > 4 {
			return nil, fmt.Errorf("%s: image indexes nested too deep", where)
		}
		if !d.MediaType.IsIndex() {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%s: image %s: %w", where, d.Digest, err)
			}
			return pinnedImage{img, d.Digest}, nil
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", where, d.Digest, err)
		}
		raw, err := child.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", where, d.Digest, err)
		}
		if err := checkBlob("index", raw, d.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", where, d.Digest, err)
		}
		found := false
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.Satisfies(platform) {
				idx, d, found = child, m, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: index %s has no image for %s", where, d.Digest, platform)
		}
	}
}

// pinnedImage is a layout image whose digest is the one its index names:
// go-containerregistry hashes whatever manifest blob it reads, so without
// this a changed manifest would pass as itself.
type pinnedImage struct {
	v1.Image
	digest v1.Hash
}

func (p pinnedImage) Digest() (v1.Hash, error) { return p.digest, nil }

// layoutFile matches the files of an OCI layout; nothing else of an
// oci-archive is unpacked.
var layoutFile = regexp.MustCompile(`^(oci-layout|index\.json|blobs/(sha256|sha512)/[0-9a-f]{64,128})$`)

// unpackLayoutArchive writes the layout files of the tar at file into dir.
func unpackLayoutArchive(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("oci-archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("oci-archive %s: %w", file, err)
		}
		rel := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag != tar.TypeReg || !layoutFile.MatchString(rel) {
			continue
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := writeFile(dst, tr); err != nil {
			return fmt.Errorf("oci-archive %s: %s: %w", file, hdr.Name, err)
		}
	}
}

func writeFile(dst string, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
