// Package frame holds the value types every part of umlswitch shares: MAC
// addresses, dense port identifiers and the reusable batch of frames (Vector)
// that a port reader fills and the switching core forwards.
//
// It imports nothing beyond the standard library so that transports and the
// switching core can both depend on it without depending on each other.
package frame
