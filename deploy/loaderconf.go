package deploy

import (
	"fmt"
	"strings"
)

// LoaderConf is systemd-boot's loader/loader.conf.
const LoaderConf = "loader/loader.conf"

// LoaderConfig is the loader.conf install writes: a default glob over this
// OS's entries (see the package comment for why not an exact id) and a menu
// timeout.
func LoaderConfig(os string, timeout int) []byte {
	return []byte(fmt.Sprintf("# written by cfsboot install: the default is the first good %s entry\ndefault %s\ntimeout %d\n", os, DefaultPattern(os), timeout))
}

// DefaultPattern matches every deployment of os.
func DefaultPattern(os string) string { return os + "-*" }

// ParseLoaderConf returns the default pattern and timeout of a loader.conf
// ("" and -1 when absent). Later lines win, as in systemd-boot.
func ParseLoaderConf(data []byte) (defaultPattern string, timeout int) {
	timeout = -1
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		key, value, _ := strings.Cut(line, " ")
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, value = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch key {
		case "default":
			defaultPattern = value
		case "timeout":
			var n int
			if _, err := fmt.Sscanf(value, "%d", &n); err == nil && n >= 0 {
				timeout = n
			}
		}
	}
	return defaultPattern, timeout
}

// OSFromESP reads the OS ID that names the entries from loader.conf's
// default glob, as install wrote it.
func OSFromESP(esp ESP) (string, error) {
	data, err := esp.ReadFile(LoaderConf)
	if err != nil {
		return "", fmt.Errorf("not a cfsboot ESP: %w", err)
	}
	def, _ := ParseLoaderConf(data)
	os, ok := strings.CutSuffix(def, "-*")
	if !ok || os == "" || strings.ContainsAny(os, "*?[") {
		return "", fmt.Errorf("%s: default %q is not the <os>-* glob cfsboot install writes", LoaderConf, def)
	}
	return os, nil
}
