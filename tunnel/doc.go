// Package tunnel is the shared machinery of the ports that carry frames in
// an IP or UDP encapsulation (GRE, L2TPv3, VXLAN): one socket per
// local address, shared by every port whose peer sends to that address, so
// that many UMLs can reach one switch address.
//
// An Endpoint owns the socket and its reader: it receives batches with the
// sender's address, strips the IPv4 header a raw socket hands up, asks the
// protocol's Router which port a packet is for, lets that port check the
// encapsulation, and places the frame at the vector's headroom. A Port
// sends each frame as a two-iovec message, its header first, so frames are
// never copied to be encapsulated; a per-port header template is shared by
// every message unless a sequence or counter must advance per frame.
//
// UDP sockets offload segmentation where the kernel can (offload.go): a
// run of same-size frames leaves in one message (GSO), and datagrams that
// arrive coalesced (GRO) are split into their frames, which are then
// copied into place rather than received there.
//
// Routes is the routing table every protocol shares (routes.go): lookups
// without a lock on the receive path, and claim-then-publish so that a
// port is routed to only once the switch has attached it.
//
// The protocol packages (transports/gre, transports/l2tpv3,
// transports/vxlan) supply header encoding and checking, and how a
// packet's route is read from it; this package knows no protocol.
package tunnel
