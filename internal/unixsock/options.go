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

// ListenerKeys are AccessKeys and allow_uid= and allow_gid=, for a kind
// that accepts connections and so knows each peer's credentials (a
// datagram socket does not: it takes AccessKeys alone).
func ListenerKeys[O any](access func(*O) *Access) []configs.Key {
	return append(AccessKeys(access),
		configs.IDs("allow_uid", "USERS", "users ('1000;alice') who alone, with root and the switch's own user, may stay "+
			"connected (SO_PEERCRED), the control API included: narrows what mode= lets connect, never widens it",
			func(o *O) *[]uint32 { return &access(o).Allow.UIDs }, configs.ParseUsers).WithDefault("everyone"),
		configs.IDs("allow_gid", "GROUPS", "groups ('uml-net') whose members may stay connected too",
			func(o *O) *[]uint32 { return &access(o).Allow.GIDs }, configs.ParseGroups).WithDefault("everyone"),
	)
}
