package extcap

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFolders(t *testing.T) {
	// tshark -G folders of Debian 12's Wireshark 4.0, and of a newer one.
	const v40 = "Temp:                \t/tmp\nPersonal configuration:\t/root/.config/wireshark\n" +
		"Global Plugins:      \t/usr/lib/x86_64-linux-gnu/wireshark/plugins/4.0\n" +
		"Extcap path:         \t/usr/lib/x86_64-linux-gnu/wireshark/extcap\nMaxMind database path:\t/usr/share/GeoIP\n"
	const v44 = "Personal Extcap path:\t/home/u/.local/lib/wireshark/extcap\n" +
		"Global Extcap path:\t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n"
	if p, s := Folders(v40); len(p) != 0 || len(s) != 1 || s[0] != "/usr/lib/x86_64-linux-gnu/wireshark/extcap" {
		t.Errorf("4.0: personal %q, system %q", p, s)
	}
	if d, err := ChooseFolder(v40); err != nil || d != "/usr/lib/x86_64-linux-gnu/wireshark/extcap" {
		t.Errorf("4.0: chose %q, %v", d, err)
	}
	if d, err := ChooseFolder(v44); err != nil || d != "/home/u/.local/lib/wireshark/extcap" {
		t.Errorf("4.4: chose %q, %v", d, err)
	}
	if _, err := ChooseFolder("Temp: /tmp\n"); err == nil {
		t.Error("no extcap folder: no error")
	}
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "umlswitch")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "extcap") // missing: made
	link, err := Install(folder, exe)
	if err != nil || link != filepath.Join(folder, LinkName) {
		t.Fatalf("install: %q, %v", link, err)
	}
	if to, err := os.Readlink(link); err != nil || to != exe {
		t.Fatalf("the link points to %q (%v), want %q", to, err, exe)
	}
	// Again, and from another binary called umlswitch: the link is ours.
	exe2 := filepath.Join(dir, "umlswitch")
	os.WriteFile(exe2, []byte("#!/bin/sh\n"), 0o755)
	if _, err := Install(folder, exe2); err != nil {
		t.Fatalf("install over our own link: %v", err)
	}
	if to, _ := os.Readlink(link); to != exe2 {
		t.Errorf("the link points to %q, want %q", to, exe2)
	}
	if _, err := Install(folder, "relative/umlswitch"); err == nil {
		t.Error("a relative binary path was linked")
	}
	if _, err := Uninstall(folder, exe); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the link is still there: %v", err)
	}
	if _, err := Uninstall(folder, exe); err == nil || !strings.Contains(err.Error(), "no "+link) {
		t.Errorf("uninstall twice: %v", err)
	}
	// What is not our link is never replaced or removed.
	other := filepath.Join(dir, "sshdump")
	os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755)
	for name, mk := range map[string]func() error{
		"a file":            func() error { return os.WriteFile(link, []byte("mine"), 0o755) },
		"a link to another": func() error { return os.Symlink(other, link) },
		"a dangling link":   func() error { return os.Symlink(filepath.Join(dir, "gone"), link) },
		"a folder":          func() error { return os.Mkdir(link, 0o755) },
	} {
		os.RemoveAll(link)
		if err := mk(); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Lstat(link)
		if _, err := Install(folder, exe); err == nil || !strings.Contains(err.Error(), "not a link to umlswitch: not replaced") {
			t.Errorf("install over %s: %v", name, err)
		}
		if _, err := Uninstall(folder, exe); err == nil || !strings.Contains(err.Error(), "left alone") {
			t.Errorf("uninstall of %s: %v", name, err)
		}
		if after, err := os.Lstat(link); err != nil || !os.SameFile(before, after) {
			t.Errorf("%s was touched: %v", name, err)
		}
	}
	// A dangling link named after umlswitch (a binary removed) is ours.
	os.RemoveAll(link)
	os.Symlink(filepath.Join(dir, "old", "umlswitch"), link)
	if _, err := Uninstall(folder, exe); err != nil {
		t.Errorf("uninstall of a dangling link of ours: %v", err)
	}
}

func TestInstallMessages(t *testing.T) {
	err := writeErr("install", "/usr/lib/x86_64-linux-gnu/wireshark/extcap", &fs.PathError{Op: "symlink", Path: "x", Err: fs.ErrPermission})
	for _, want := range []string{"/usr/lib/x86_64-linux-gnu/wireshark/extcap", "run it as root", "sudo umlswitch extcap install", "-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: want %q in it", err, want)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		if _, err := Install(ro, "/usr/bin/umlswitch"); err == nil || !strings.Contains(err.Error(), "run it as root") {
			t.Errorf("a folder not ours: %v", err)
		}
	}
}
