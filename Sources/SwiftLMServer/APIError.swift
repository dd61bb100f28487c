import Foundation

/// An error in the OpenAI API's shape, `{"error": {"message", "type", "param", "code"}}`,
/// with its HTTP status.
public struct APIError: Error, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(
        status: Int, message: String, type: String = "invalid_request_error",
        param: String? = nil, code: String? = nil
    ) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status): \(message)" }

    /// The JSON body.
    public var body: Data {
        let error: [String: Any] = [
            "message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull(),
        ]
        return
            (try? JSONSerialization.data(withJSONObject: ["error": error], options: [.sortedKeys]))
            ?? Data()
    }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param, code: code)
    }

    static let missingAPIKey = APIError(
        status: 401,
        message: "no API key: send it as 'Authorization: Bearer KEY'", code: "invalid_api_key")
    static let wrongAPIKey = APIError(
        status: 401, message: "the API key is not valid", code: "invalid_api_key")

    static func unknownModel(_ name: String, served: String) -> APIError {
        APIError(
            status: 404,
            message: "the model '\(name)' does not exist; this server runs '\(served)'",
            param: "model", code: "model_not_found")
    }

    static func notFound(_ method: String, _ path: String) -> APIError {
        APIError(status: 404, message: "no route for \(method) \(path)", code: "not_found")
    }

    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(
            status: 413, message: "the request body is larger than the limit of \(limit) bytes",
            code: "request_too_large")
    }

    static func overloaded(_ message: String) -> APIError {
        APIError(status: 503, message: message, type: "server_error", code: "overloaded")
    }
}
