// Package e2e boots real User Mode Linux kernels (Debian's user-mode-linux)
// on a busybox hostfs root and checks that they reach each other, the host
// and VDE clients through the umlswitch binary.
//
// The tests run only with -e2e (make test passes it); with it, a missing
// kernel, busybox-static, VDE tool or privilege fails the run instead of
// skipping. Scenarios that need the host side (taps, VDE taps) run the
// switch and its clients inside a network namespace of their own.
package e2e
