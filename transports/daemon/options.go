package daemon

import (
	"fmt"
	"net"
	"slices"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a daemon port's keys (transport=daemon,...).
type Options struct {
	Path string
	unixsock.Access
	CompatV0 bool
	DataPath string
	API      string // what the control API on this socket allows: rw (also when empty), ro or off
	// APIUID and APIGID (lists, as given) may use the API's writes and
	// live capture on this socket besides root and the switch's user.
	APIUID, APIGID string
}

// schema declares the daemon transport's keys.
var schema = configs.Kind{
	Name:    "daemon",
	Summary: "uml_switch's control socket: UMLs (eth0=daemon) and VDE clients, each a port of its own",
	New:     func() configs.Options { return &Options{Access: unixsock.NoOwner} },
	Keys: slices.Concat([]configs.Key{
		configs.Text("path", "PATH", "the control socket; a directory, or a path ending in /, gets VDE's layout PATH/ctl",
			func(o *Options) *string { return &o.Path }, nil).Require(),
	}, unixsock.ListenerKeys(func(o *Options) *unixsock.Access { return &o.Access }), []configs.Key{
		configs.Flag("compat_v0", "also serve version 0 clients, which send to one shared data socket", func(o *Options) *bool { return &o.CompatV0 }),
		configs.Text("data", "PATH", "with compat_v0=1: the shared data socket", func(o *Options) *string { return &o.DataPath }, nil).
			WithDefault(DefaultV0DataPath),
		configs.Text("api", "rw|ro|off", "what the control API on this socket allows: everything, reading (writes get 403), nothing",
			func(o *Options) *string { return &o.API }, checkAPI).WithDefault("rw"),
		configs.Text("api_uid", "USERS", "users ('1000;alice') who may, besides root and the switch's own user, change the switch "+
			"and capture its traffic through this socket's API; what they open is opened with their own rights",
			func(o *Options) *string { return &o.APIUID }, func(v string) error { _, err := configs.ParseUsers(v); return err }),
		configs.Text("api_gid", "GROUPS", "groups ('uml-net') whose members may do what api_uid= allows",
			func(o *Options) *string { return &o.APIGID }, func(v string) error { _, err := configs.ParseGroups(v); return err }),
	}),
	Privileged: func(o configs.Options) string {
		if opts := o.(*Options); opts.APIUID != "" || opts.APIGID != "" {
			return "api_uid= and api_gid= grant rights on the control API, which only root may give"
		}
		return ""
	},
}

// Grants are the users and groups api_uid= and api_gid= name (checked
// when the spec was parsed).
func (o *Options) Grants() (uids, gids []uint32) {
	if o.APIUID != "" {
		uids, _ = configs.ParseUsers(o.APIUID)
	}
	if o.APIGID != "" {
		gids, _ = configs.ParseGroups(o.APIGID)
	}
	return uids, gids
}

func checkAPI(v string) error {
	switch v {
	case "rw", "ro", "off":
		return nil
	}
	return fmt.Errorf("%q is not rw, ro or off", v)
}

// Config is the listener o describes in env. Connections that are not
// clients go to env.Handoff with what this socket's keys say of its API,
// unless api=off refuses them.
func (o *Options) Config(env portkind.Env) Config {
	var handoff func(net.Conn)
	if o.API != "off" && env.Handoff != nil {
		api := portkind.API{ReadOnly: o.API == "ro"}
		api.UIDs, api.GIDs = o.Grants()
		handoff = func(c net.Conn) { env.Handoff(c, api) }
	}
	return Config{Options: *o, Common: env.Common, Handoff: handoff, Clients: env.Clients, NotAllowed: env.NotAllowed}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema, Listens: portkind.Always,
		Open: portkind.Listening(func(o *Options, env portkind.Env) (*Transport, error) { return Listen(o.Config(env)) })})
}
