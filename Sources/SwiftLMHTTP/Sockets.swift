// The sockets that libmicrohttpd does not handle for us: the listening socket, bound here so
// that a failure can say why, and a look at a connection's socket for a client that left.
// Linux only, like the package's libmicrohttpd (POLLRDHUP, SOCK_CLOEXEC).
import Foundation
import Glibc

/// A TCP socket bound to one address and listening, which the server hands to libmicrohttpd.
struct ListeningSocket {
    let socket: Int32
    /// The bound port: the one the system chose when 0 was asked for.
    let port: Int

    init(host: String, port: Int) throws(HTTPServerError) {
        guard (0...65535).contains(port) else { throw .invalidPort(port) }
        guard let address = SocketAddress(host: host, port: port) else {
            throw .invalidHost(host)
        }

        let socket = Glibc.socket(
            address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else {
            throw .listenFailed(host: host, port: port, reason: errorText(errno))
        }

        // SO_REUSEADDR lets a restarted server bind while its old connections sit in
        // TIME_WAIT; on Linux it does not let two listening sockets share a port.
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &one, size)
        if address.family == AF_INET6 {
            // "::" then means IPv6 only, as the host says, not IPv4 as well.
            _ = setsockopt(socket, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size)
        }

        guard address.bind(socket) == 0, listen(socket, SOMAXCONN) == 0,
            let bound = SocketAddress(boundTo: socket)
        else {
            let error = errno
            _ = close(socket)
            if error == EADDRINUSE { throw .addressInUse(host: host, port: port) }
            throw .listenFailed(host: host, port: port, reason: errorText(error))
        }
        self.socket = socket
        self.port = bound.port
    }
}

/// An IPv4 or IPv6 socket address.
private struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t

    var family: Int32 { Int32(storage.ss_family) }

    var port: Int {
        withUnsafeBytes(of: storage) { bytes in
            family == AF_INET
                ? Int(UInt16(bigEndian: bytes.load(as: sockaddr_in.self).sin_port))
                : Int(UInt16(bigEndian: bytes.load(as: sockaddr_in6.self).sin6_port))
        }
    }

    /// The address of a numeric host, or nil for anything else (names are not resolved).
    init?(host: String, port: Int) {
        var ipv4 = sockaddr_in()
        var ipv6 = sockaddr_in6()
        if inet_pton(AF_INET, host, &ipv4.sin_addr) == 1 {
            ipv4.sin_family = sa_family_t(AF_INET)
            ipv4.sin_port = in_port_t(port).bigEndian
            self.init(copying: ipv4)
        } else if inet_pton(AF_INET6, host, &ipv6.sin6_addr) == 1 {
            ipv6.sin6_family = sa_family_t(AF_INET6)
            ipv6.sin6_port = in_port_t(port).bigEndian
            self.init(copying: ipv6)
        } else {
            return nil
        }
    }

    /// The address a socket is bound to.
    init?(boundTo socket: Int32) {
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(socket, $0, &length)
            }
        }
        guard result == 0 else { return nil }
    }

    private init<Address>(copying address: Address) {
        length = socklen_t(MemoryLayout<Address>.size)
        withUnsafeBytes(of: address) { source in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
        }
    }

    func bind(_ socket: Int32) -> Int32 {
        withUnsafeBytes(of: storage) { bytes in
            Glibc.bind(socket, bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// Whether the client has closed its end of a connection, asked of the kernel without reading
/// or blocking.
///
/// libmicrohttpd notices a client that went away only when a write fails, and nothing is
/// written while a producer is slow to send. So a streamed response's reader asks here each
/// time it has waited in vain. POLLRDHUP reports the client's FIN even behind unread bytes (a
/// pipelined request); POLLHUP and POLLERR report a reset, and a socket that MHD_stop_daemon
/// has shut down. A client that half-closes while it awaits the response counts as gone, as in
/// nginx (`ngx_http_upstream_check_broken_connection`); clients of a streaming API do not.
func peerHasClosed(_ socket: Int32) -> Bool {
    guard socket >= 0 else { return false }

    let hangUp = Int16(POLLHUP | POLLERR | POLLNVAL) | pollReadHangUp
    var entry = pollfd(fd: socket, events: Int16(POLLIN) | pollReadHangUp, revents: 0)
    guard poll(&entry, 1, 0) == 1 else { return false }
    if entry.revents & hangUp != 0 { return true }

    // Readable without a hang-up flag: a read of 0 bytes is the end of the stream too.
    var byte: UInt8 = 0
    return recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0
}

/// Linux's POLLRDHUP, which Glibc declares only under _GNU_SOURCE and Swift therefore does not
/// see; the value is the kernel's (include/uapi/asm-generic/poll.h).
private let pollReadHangUp: Int16 = 0x2000

/// The system's text for an errno value.
func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
