package extcap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LinkName is the name of the link in Wireshark's extcap folder.
const LinkName = "umlswitch"

// Folders reads the extcap folders out of `tshark -G folders`: lines
// "Extcap path:" (Wireshark 4.0: the system folder, the only one it
// reads), and on newer versions "Personal Extcap path:" and "Global
// Extcap path:". Personal folders come first.
func Folders(out string) (personal, system []string) {
	for _, line := range strings.Split(out, "\n") {
		label, value, ok := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		if !ok || value == "" || !strings.Contains(strings.ToLower(label), "extcap path") {
			continue
		}
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(label)), "personal") {
			personal = append(personal, value)
		} else {
			system = append(system, value)
		}
	}
	return personal, system
}

// ChooseFolder is where install puts the link: the personal extcap
// folder where Wireshark has one (no root needed), else the system one.
func ChooseFolder(tsharkFolders string) (string, error) {
	personal, system := Folders(tsharkFolders)
	switch {
	case len(personal) > 0:
		return personal[0], nil
	case len(system) > 0:
		return system[0], nil
	}
	return "", errors.New("tshark -G folders names no extcap folder")
}

// ours reports whether path is a link this extcap made: a symbolic link
// to a file named umlswitch, or to exe itself.
func ours(path, exe string) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return false, nil
	}
	to, err := os.Readlink(path)
	if err != nil {
		return false, err
	}
	if filepath.Base(to) == LinkName {
		return true, nil
	}
	a, errA := os.Stat(path)
	b, errB := os.Stat(exe)
	return errA == nil && errB == nil && os.SameFile(a, b), nil
}

// Install links dir/umlswitch to exe, replacing a link of ours (an older
// install) but nothing else, and returns the link's path. dir is created
// if missing (a personal folder may not exist yet).
func Install(dir, exe string) (string, error) {
	if !filepath.IsAbs(exe) {
		return "", fmt.Errorf("extcap install: %s is not an absolute path", exe)
	}
	link := filepath.Join(dir, LinkName)
	mine, err := ours(link, exe)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("extcap install: %w", err)
	case !mine:
		return "", fmt.Errorf("extcap install: %s exists and is not a link to umlswitch: not replaced (remove it yourself, or give -dir another folder)", link)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", writeErr("install", dir, err)
	}
	// A new link beside the old, renamed over it: the folder never lacks one.
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d", LinkName, os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(exe, tmp); err != nil {
		return "", writeErr("install", dir, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return "", writeErr("install", dir, err)
	}
	return link, nil
}

// Uninstall removes dir/umlswitch if it is a link of ours, and returns
// its path.
func Uninstall(dir, exe string) (string, error) {
	link := filepath.Join(dir, LinkName)
	mine, err := ours(link, exe)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("extcap uninstall: no %s", link)
	case err != nil:
		return "", fmt.Errorf("extcap uninstall: %w", err)
	case !mine:
		return "", fmt.Errorf("extcap uninstall: %s is not a link to umlswitch: left alone", link)
	}
	if err := os.Remove(link); err != nil {
		return "", writeErr("uninstall", dir, err)
	}
	return link, nil
}

func writeErr(what, dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("extcap %s: %w: the folder %s is not yours to write: run it as root (sudo umlswitch extcap %s), "+
			"or give -dir a folder of yours that Wireshark reads", what, err, dir, what)
	}
	return fmt.Errorf("extcap %s: %w", what, err)
}
