// Package peercred says who is at the other end of a unix socket
// (SO_PEERCRED and SO_PEERGROUPS) and runs file system calls with another
// user's credentials, so that a root switch creates, connects to and opens
// only what the user who asked could have created, connected to or opened
// itself.
//
// Do changes the file system uid, gid and supplementary groups of one
// locked OS thread that is thrown away afterwards: the process's own
// credentials never change, and no other goroutine ever runs with the
// borrowed ones. Go's runtime starts new threads from a template thread,
// never from a locked one, so the borrowed credentials are not inherited.
package peercred
