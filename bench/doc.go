// Package bench is umlswitch's load generator: it speaks the uml_switch
// daemon protocol to any switch's control socket (umlswitch, uml_switch,
// vde_switch), blasts unicast frames from every port to the next with
// sendmmsg while receivers drain with recvmmsg, and reports offered and
// delivered frames per second, loss, and the switch process's CPU time, so
// that switches can be compared per CPU-second as well as per second.
//
// Each generator port behaves like a client of the kind chosen: UML-style
// (sendto the switch's address, never connect back; the default) or
// VDE-style (connect back). One thread drives all ports without blocking, in
// turns, and waits in epoll only when nothing moved: the cheapest load a
// single core can offer, with no context switch per batch.
//
// A soak (soak.go) is the other kind of run: moderate traffic and client
// churn through umlswitch for a long time, sampling its memory, descriptors
// and goroutines to find what leaks.
package bench
