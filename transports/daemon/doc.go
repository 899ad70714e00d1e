// Package daemon serves the uml_switch "daemon" protocol: UML kernels booted
// with ethN=daemon,MAC,unix,CTL and VDE clients (vde_plug, vde_plug2tap, QEMU
// -netdev vde, UML's eth=vde) connect to a control socket, send a request
// naming their data socket, and are given the address of a data socket to
// send frames to.
//
// Every client gets a data socket of its own, connected to the client's
// address before the reply is sent (VDE clients unlink their path right after
// the handshake and only accept datagrams from the address they were given).
// A socket per client also makes each client its own switch port with its own
// reader goroutine, lets the kernel queue a client's frames beyond the
// 10-datagram limit of unconnected unix sockets, and makes POLLOUT report the
// client's receive queue, which the switch uses for backpressure.
//
// Clients of the pre-2002 version 0 protocol (-compat-v0) send to one shared
// data socket at a fixed path instead; frames there are matched to ports by
// sender address.
//
// The wire layouts are in shared/docs/wire-formats.md sections 1 and 2.
package daemon
