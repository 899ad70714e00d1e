package unixsock

import (
	"os"

	"github.com/umlswitch/umlswitch/configs"
)

// AccessKeys are mode=, owner= and group= over the Access in a listener
// kind's options, which its Kind.New starts at NoOwner.
func AccessKeys[O any](access func(*O) *Access) []configs.Key {
	return []configs.Key{
		configs.Mode("permissions of the socket file (-mode sets them for the default switch's sockets)",
			func(o *O) *os.FileMode { return &access(o).Mode }),
		configs.Owner("owner of the socket file", func(o *O) *int { return &access(o).UID }),
		configs.Group("group of the socket file", func(o *O) *int { return &access(o).GID }),
	}
}
