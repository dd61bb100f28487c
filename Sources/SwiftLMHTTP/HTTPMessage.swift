import Foundation

/// A request as the handler sees it: complete, its body read into memory.
public struct HTTPRequest: Sendable {
    /// The method as the client sent it: "GET", "POST", ...
    public var method: String
    /// The path of the URL, percent-decoded, without the query.
    public var path: String
    /// The query's arguments, percent-decoded; an argument without a value maps to "". When a
    /// name repeats, the last value wins.
    public var query: [String: String]
    /// Header fields by lowercased name. A field that repeats is joined with ", ", which
    /// RFC 9110 (section 5.3) makes equivalent for every field but Set-Cookie.
    public var headers: [String: String]
    public var body: Data

    public init(
        method: String, path: String, query: [String: String] = [:],
        headers: [String: String] = [:], body: Data = Data()
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The value of a header field, by name in any case.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }
}

/// What the handler answers.
///
/// The server sets `content-length` (bytes) or `transfer-encoding: chunked` (streams) itself.
/// A field that libmicrohttpd refuses (one of those two, an empty value, a line break in the
/// value, a space in the name) turns the response into a 500 whose body names the field, so a
/// wrong header shows at the client rather than vanishing.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header fields in the order they are sent, e.g. `("content-type", "application/json")`.
    public var headers: [(name: String, value: String)]
    public var body: Body

    public enum Body: Sendable {
        /// A body known in full before it is sent.
        case bytes(Data)
        /// A body produced while it is sent, in chunked transfer encoding.
        case stream(HTTPStream)
    }

    public init(status: Int, headers: [(name: String, value: String)] = [], body: Body) {
        precondition((100...999).contains(status), "an HTTP status has three digits, not \(status)")
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON body, already encoded.
    public static func json(status: Int = 200, _ body: Data) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("content-type", "application/json")], body: .bytes(body))
    }

    /// A plain-text body in UTF-8.
    public static func text(status: Int = 200, _ text: String) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("content-type", "text/plain; charset=utf-8")],
            body: .bytes(Data(text.utf8)))
    }

    /// A body that `stream` produces while it is sent; server-sent events by default. The server
    /// adds `cache-control: no-cache`, so that no proxy holds the events back.
    public static func stream(
        status: Int = 200, contentType: String = "text/event-stream", _ stream: HTTPStream
    ) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("content-type", contentType)], body: .stream(stream))
    }
}
