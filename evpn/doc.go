// Package evpn is the BGP EVPN control plane (RFC 7432, RFC 8365) that
// joins switches on many hosts into one layer-2 domain per VNI without
// hand-written tunnels. GoBGP runs in process and speaks BGP; this package
// decides what to announce and what the announcements of other VTEPs mean:
//
//   - each switch with a VNI announces an inclusive multicast route (type 3)
//     carrying the PMSI tunnel attribute (ingress replication), and every
//     other VTEP's type-3 route becomes a VXLAN tunnel port of that switch:
//     its flood list is the set of such ports (head-end replication);
//   - each address learned on a switch's own ports is announced as a MAC/IP
//     route (type 2), and the addresses other VTEPs announce become remote
//     entries of the switch's MAC table, so known unicast is never flooded;
//     where a host moves, MAC mobility sequence numbers (RFC 7432 section
//     15) decide who holds it.
//
// Routes are encoded as FRR encodes them, so FRR with advertise-all-vni and
// the kernel's VXLAN device interoperate with no per-VNI configuration:
// route distinguisher router_id:N, route target (ASN & 0xFFFF):VNI, the VNI
// in the labels, the VXLAN encapsulation extended community, and the VTEP
// address as next hop, originating router and PMSI tunnel identifier.
//
// The switches' ports and tables are driven through Dataplane, which the
// instance implements; this package never touches a socket of the data
// plane.
package evpn
