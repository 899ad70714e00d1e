// Package fabric is the switching core of umlswitch: a Fabric (the
// forwarding engine) runs learning Ethernet switches (or hubs), each a
// Switch, over ports it knows only through the small interfaces in port.go.
//
// Every reader goroutine runs to completion: it reads a batch of frames from
// its port (or shared socket), learns source addresses, looks up destinations,
// groups the batch by egress port and hands each group to that port's Write in
// one call, then reads the next batch. No channel and no per-frame
// allocation is on that path. Two pools are, each touched once per batch:
// a reader takes a forwarder (staging lists that grow with the ports, so one
// per reader would cost readers times ports), and a reader of a port that
// lends (Receiver.Lends) takes buffers only while frames wait, so idle ports
// hold none. When a destination's queue is full the reader holds the unsent
// frames and stops reading (so the sender is slowed, not robbed) until the
// destination drains or a bound passes; other readers are never held.
//
// fabric never imports a concrete transport; package instance opens the
// ports and attaches them.
package fabric
