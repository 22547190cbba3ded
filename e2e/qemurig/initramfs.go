package qemurig

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Initramfs collects files for a gzip-compressed newc cpio archive, the format
// the kernel unpacks as its first root file system.
type Initramfs struct {
	files map[string]initFile
	dirs  []string
}

// AddDir adds an empty directory (mount points such as /proc).
func (r *Initramfs) AddDir(name string) { r.dirs = append(r.dirs, path.Clean("/"+name)) }

type initFile struct {
	mode uint32
	data []byte
}

// Add puts data at name (an absolute path) with the given permission bits.
func (r *Initramfs) Add(name string, mode os.FileMode, data []byte) {
	if r.files == nil {
		r.files = map[string]initFile{}
	}
	r.files[path.Clean("/"+name)] = initFile{mode: 0o100000 | uint32(mode.Perm()), data: data}
}

// AddFile copies a host file into the archive.
func (r *Initramfs) AddFile(name, hostPath string, mode os.FileMode) error {
	b, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("qemurig: initramfs: %w", err)
	}
	r.Add(name, mode, b)
	return nil
}

// Write writes the archive, gzip-compressed, with every parent directory.
func (r *Initramfs) Write(w io.Writer) error {
	dirs := map[string]bool{}
	for _, d := range r.dirs {
		dirs[d] = true
	}
	for name := range r.files {
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before their children
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	ino := uint32(1)
	for _, n := range names {
		f, isFile := r.files[n]
		mode := uint32(0o040755)
		if isFile {
			mode = f.mode
		}
		if err := writeCpioEntry(zw, ino, strings.TrimPrefix(n, "/"), mode, f.data); err != nil {
			return err
		}
		ino++
	}
	if err := writeCpioEntry(zw, 0, "TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return zw.Close()
}

// writeCpioEntry writes one "070701" (newc) header, the name and the data,
// each padded to 4 bytes.
func writeCpioEntry(w io.Writer, ino uint32, name string, mode uint32, data []byte) error {
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if pad := (4 - len(data)%4) % 4; pad > 0 {
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return nil
}
