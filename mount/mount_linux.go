// Package mount mounts a composefs root (EROFS image + overlayfs over the
// object store) with the new mount API, and switches into it.
package mount

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fsContext is an fsopen() filesystem context. Its errors carry the
// kernel's own explanation, read back from the context.
type fsContext struct {
	fd     int
	fstype string
}

func openContext(fstype string) (*fsContext, error) {
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen %s: %w (is the %s module loaded?)", fstype, err, fstype)
	}
	return &fsContext{fd: fd, fstype: fstype}, nil
}

func (c *fsContext) close() { unix.Close(c.fd) }

// kernelMessages drains the messages the kernel logged on the context.
func (c *fsContext) kernelMessages() string {
	var msgs []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(c.fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(bytes.TrimSpace(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (kernel: " + strings.Join(msgs, "; ") + ")"
}

func (c *fsContext) fail(what string, err error) error {
	return fmt.Errorf("%s %s: %w%s", c.fstype, what, err, c.kernelMessages())
}

func (c *fsContext) set(key, value string) error {
	if err := unix.FsconfigSetString(c.fd, key, value); err != nil {
		return c.fail(key+"="+value, err)
	}
	return nil
}

func (c *fsContext) flag(key string) error {
	if err := unix.FsconfigSetFlag(c.fd, key); err != nil {
		return c.fail(key, err)
	}
	return nil
}

// attach creates the superblock and mounts it at target with the
// MOUNT_ATTR_* flags attr.
func (c *fsContext) attach(target string, attr int) error {
	if err := unix.FsconfigCreate(c.fd); err != nil {
		return c.fail("create", err)
	}
	mfd, err := unix.Fsmount(c.fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return c.fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s: attach at %s: %w", c.fstype, target, err)
	}
	return nil
}

// EROFS mounts the composefs image open at fd, read-only, at target. The
// image is used file-backed through the descriptor itself, so what is
// mounted is the very file whose digest was measured on that descriptor.
func EROFS(fd int, target string) error {
	c, err := openContext("erofs")
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.set("source", "/proc/self/fd/"+strconv.Itoa(fd)); err != nil {
		return err
	}
	if err := c.flag("ro"); err != nil {
		return err
	}
	return c.attach(target, unix.MOUNT_ATTR_RDONLY)
}

// Verity modes of overlayfs' verity= option.
const (
	VerityRequire = "require" // every metacopy file must carry a digest the kernel checks
	VerityOff     = "off"     // only for hosts without fs-verity (tests)
)

// Overlay describes an overlayfs mount.
type Overlay struct {
	Lower       []string // top first
	Data        []string // data-only lower layers (the object store)
	Upper, Work string   // both empty for a read-only overlay
	Composefs   bool     // metacopy=on, redirect_dir=on, as composefs images need
	Verity      string   // "", VerityRequire or VerityOff
	// Untrusted mounts it nosuid,nodev: for an upper layer anyone with the
	// disk can write.
	Untrusted bool
}

// Mount mounts the overlay at target.
func (o Overlay) Mount(target string) error {
	if len(o.Lower) == 0 {
		return errors.New("overlay: no lower layer")
	}
	c, err := openContext("overlay")
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.set("source", "composefs"); err != nil {
		return err
	}
	for _, l := range o.Lower {
		if err := c.set("lowerdir+", l); err != nil {
			return err
		}
	}
	for _, d := range o.Data {
		if err := c.set("datadir+", d); err != nil {
			return err
		}
	}
	if o.Upper != "" {
		if err := c.set("upperdir", o.Upper); err != nil {
			return err
		}
		if err := c.set("workdir", o.Work); err != nil {
			return err
		}
	}
	if o.Composefs {
		for _, kv := range [][2]string{{"metacopy", "on"}, {"redirect_dir", "on"}} {
			if err := c.set(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	if o.Verity != "" {
		if err := c.set("verity", o.Verity); err != nil {
			return err
		}
	}
	attr := 0
	if o.Upper == "" {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	if o.Untrusted {
		attr |= unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	}
	return c.attach(target, attr)
}

// Bind bind-mounts src at dst.
func Bind(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	return nil
}

// BindUntrusted bind-mounts the directory open at fd (with what is mounted
// below it) at dst, nosuid,nodev. Binding the descriptor mounts exactly the
// directory that was checked, without resolving a path again.
func BindUntrusted(fd int, dst string) error {
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("bind on %s: open_tree: %w", dst, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("bind on %s: nosuid,nodev: %w", dst, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind on %s: %w", dst, err)
	}
	return nil
}

// Move moves the mount at src to dst.
func Move(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move mount %s to %s: %w", src, dst, err)
	}
	return nil
}
