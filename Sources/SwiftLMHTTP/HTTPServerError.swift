/// Why a server could not start. Each case describes itself in one line.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host is not a numeric IPv4 or IPv6 address.
    case invalidHost(String)
    /// The port is outside 0...65535.
    case invalidPort(Int)
    /// Another socket is already listening on the address.
    case addressInUse(host: String, port: Int)
    /// The system refused the listening socket; `reason` is its error text.
    case listenFailed(host: String, port: Int, reason: String)
    /// libmicrohttpd could not start its daemon (threads or memory ran short).
    case startFailed(host: String, port: Int)

    public var description: String {
        switch self {
        case .invalidHost(let host):
            "host \(host.debugDescription) is not a numeric IPv4 or IPv6 address "
                + "(use 127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
        case .invalidPort(let port):
            "port \(port) is outside 0...65535 (0 lets the system choose)"
        case .addressInUse(let host, let port):
            "\(endpoint(host, port)) is already in use "
                + "(stop the other server, or choose another port)"
        case .listenFailed(let host, let port, let reason):
            "cannot listen on \(endpoint(host, port)): \(reason)"
        case .startFailed(let host, let port):
            "libmicrohttpd could not start a server on \(endpoint(host, port)) "
                + "(out of threads or memory)"
        }
    }
}

/// `host:port`, with an IPv6 address in brackets as in a URL.
private func endpoint(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}
