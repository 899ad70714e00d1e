// Package unixsock handles AF_UNIX socket addresses as the opaque 110-byte
// sockaddr_un blobs that UML and uml_switch exchange, and makes the
// switch's socket files (BindPath, Listen) and capture files
// (Dir.CreateFile) in directories other users may write.
//
// Go's syscall and x/sys/unix render an abstract name as "@" plus the bytes up
// to the first NUL, and UML's data address has NULs inside it, so converting
// would lose it. Here addresses are fixed arrays, copied verbatim, and always
// passed to the kernel with addrlen 110.
//
// A root switch's sockets and captures may live where others can write
// (/tmp, a lab's directory): see safe.go for the directory rule and how no
// create, chmod, chown, truncate or unlink is ever done through a link.
package unixsock
