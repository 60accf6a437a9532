import Foundation

/// Per-request settings from a `NAME.meta.json` sidecar, `spool invoke` flags or HTTP headers,
/// with SageMaker's field names.
public struct RequestMetadata: Sendable, Equatable, Codable {
    public var contentType: String?
    public var accept: String?
    public var customAttributes: String?
    public var inferenceId: String?
    public var requestTTLSeconds: Int?
    public var invocationTimeoutSeconds: Int?

    public init(
        contentType: String? = nil, accept: String? = nil, customAttributes: String? = nil,
        inferenceId: String? = nil, requestTTLSeconds: Int? = nil, invocationTimeoutSeconds: Int? = nil
    ) {
        self.contentType = contentType
        self.accept = accept
        self.customAttributes = customAttributes
        self.inferenceId = inferenceId
        self.requestTTLSeconds = requestTTLSeconds
        self.invocationTimeoutSeconds = invocationTimeoutSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case contentType = "ContentType"
        case accept = "Accept"
        case customAttributes = "CustomAttributes"
        case inferenceId = "InferenceId"
        case requestTTLSeconds = "RequestTTLSeconds"
        case invocationTimeoutSeconds = "InvocationTimeoutSeconds"
    }

    /// The largest sidecar read; anything bigger is not metadata.
    public static let maxSidecarBytes = 64 * 1024

    /// Parses a sidecar, refusing unknown fields, wrong types and values SageMaker would refuse.
    /// - Returns: the metadata, or the reason it is invalid (one sentence).
    public static func parseSidecar(_ data: Data) -> Result<RequestMetadata, Failure> {
        func invalid(_ reason: String) -> Result<RequestMetadata, Failure> {
            .failure(Failure(.invalidRequest, "Invalid metadata sidecar: \(reason)."))
        }
        guard data.count <= maxSidecarBytes else { return invalid("it is larger than 64 KiB") }
        guard let fields = try? JSONDecoder().decode([String: JSONScalar].self, from: data) else {
            return invalid("it is not a JSON object of strings and numbers")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            return invalid("unknown field \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        var m = RequestMetadata()
        for (key, value) in fields {
            let field = CodingKeys(rawValue: key)!
            switch (field, value) {
            case (.contentType, .string(let s)): m.contentType = s
            case (.accept, .string(let s)): m.accept = s
            case (.customAttributes, .string(let s)): m.customAttributes = s
            case (.inferenceId, .string(let s)): m.inferenceId = s
            case (.requestTTLSeconds, .number(let d)), (.invocationTimeoutSeconds, .number(let d)):
                guard let i = Int(exactly: d) else { return invalid("\(key) must be a whole number") }
                if field == .requestTTLSeconds { m.requestTTLSeconds = i } else { m.invocationTimeoutSeconds = i }
            case (.requestTTLSeconds, _), (.invocationTimeoutSeconds, _):
                return invalid("\(key) must be a whole number")
            default:
                return invalid("\(key) must be a string")
            }
        }
        if let reason = m.validationError() { return invalid(reason) }
        return .success(m)
    }

    /// Checks the bounds SageMaker documents for InvokeEndpointAsync; nil when valid.
    public func validationError() -> String? {
        if let id = inferenceId, let reason = InferenceIDRules.validate(id) { return reason }
        if let ttl = requestTTLSeconds, !(60...21600).contains(ttl) {
            return "RequestTTLSeconds must be between 60 and 21600, got \(ttl)"
        }
        if let t = invocationTimeoutSeconds, !(1...3600).contains(t) {
            return "InvocationTimeoutSeconds must be between 1 and 3600, got \(t)"
        }
        if let c = customAttributes {
            if c.utf8.count > 1024 { return "CustomAttributes must be at most 1024 characters" }
            if !c.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return "CustomAttributes must be printable ASCII" }
        }
        for (name, value) in [("ContentType", contentType), ("Accept", accept)] {
            if let v = value, v.utf8.count > 1024 || !v.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                return "\(name) must be at most 1024 printable ASCII characters"
            }
        }
        return nil
    }
}

/// A JSON value as metadata needs it: strings and numbers, anything else only named.
enum JSONScalar: Decodable {
    case string(String)
    case number(Double)
    case other

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if (try? c.decode(Bool.self)) != nil {
            self = .other
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            self = .other
        }
    }
}
