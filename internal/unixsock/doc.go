// Package unixsock handles AF_UNIX socket addresses as the opaque 110-byte
// sockaddr_un blobs that UML and uml_switch exchange.
//
// Go's syscall and x/sys/unix render an abstract name as "@" plus the bytes up
// to the first NUL, and UML's data address has NULs inside it, so converting
// would lose it. Here addresses are fixed arrays, copied verbatim, and always
// passed to the kernel with addrlen 110.
package unixsock
