import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Timestamps as SageMaker writes them: ISO 8601, UTC, milliseconds (`2020-07-17T19:56:52.271Z`).
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(millis.quotientAndRemainder(dividingBy: 1000).quotient)
        var ms = Int(millis % 1000)
        if ms < 0 {
            ms += 1000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}

/// The error marker written to `errors/<path>.error.json`.
public struct ErrorMarker: Sendable, Codable, Equatable {
    public var inferenceId: String
    public var endpointName: String
    /// Where the payload was dropped or submitted.
    public var inputLocation: String
    /// Where the payload is kept for `spool retry` (until `spool gc`), when it is kept.
    public var keptInputLocation: String?
    public var failureCode: String
    /// One human sentence.
    public var failureReason: String
    public var attempts: Int
    public var receivedTime: String
    public var failedTime: String
    public var exitStatus: Int32?
    public var signal: Int32?
    public var httpStatus: Int?
    /// The last 4 KiB of the model's stderr or response body.
    public var modelOutputTail: String?

    public init(request: InferenceRequest, inputLocation: String, keptInputLocation: String?, failedAt: Date) {
        inferenceId = request.id
        endpointName = request.endpoint
        self.inputLocation = inputLocation
        self.keptInputLocation = keptInputLocation
        failureCode = (request.failureCode ?? .modelError).rawValue
        failureReason = request.failureReason ?? "The request failed."
        attempts = request.attempts
        receivedTime = Timestamp.string(request.receivedAt)
        failedTime = Timestamp.string(request.finishedAt ?? failedAt)
        exitStatus = request.evidence?.exitStatus
        signal = request.evidence?.signal
        httpStatus = request.evidence?.httpStatus
        modelOutputTail = request.evidence?.tail
    }
}

/// A line of `events.jsonl`: SageMaker's async inference notification schema.
public struct NotificationEvent: Sendable, Codable, Equatable {
    public struct RequestParameters: Sendable, Codable, Equatable {
        public var endpointName: String
        public var inputLocation: String
        public var contentType: String?
        public var accept: String?
    }

    public struct ResponseParameters: Sendable, Codable, Equatable {
        public var contentType: String?
        public var outputLocation: String
    }

    /// The output itself (`include_inference_response`): `content` in base64, `encoding` "BASE64".
    public struct ResponseBody: Sendable, Codable, Equatable {
        public var content: String
        public var encoding: String

        public init(content: String, encoding: String = "BASE64") {
            self.content = content
            self.encoding = encoding
        }
    }

    public var eventVersion = "1.0"
    public var eventSource = "spool"
    public var eventName = "InferenceResult"
    public var eventTime: String
    public var receivedTime: String
    public var invocationStatus: String
    public var inferenceId: String
    public var requestParameters: RequestParameters
    public var responseParameters: ResponseParameters?
    public var failureReason: String?
    public var failureCode: String?
    public var failureLocation: String?
    public var responseBody: ResponseBody?

    /// The event for a finished request. Locations are absolute paths.
    public init(request: InferenceRequest, inputLocation: String, outputLocation: String, failureLocation: String, eventTime: Date) {
        self.eventTime = Timestamp.string(eventTime)
        receivedTime = Timestamp.string(request.receivedAt)
        inferenceId = request.id
        requestParameters = RequestParameters(
            endpointName: request.endpoint, inputLocation: inputLocation,
            contentType: request.contentType, accept: request.accept
        )
        if request.state == .succeeded {
            invocationStatus = "Completed"
            responseParameters = ResponseParameters(contentType: request.accept, outputLocation: outputLocation)
        } else {
            invocationStatus = "Failed"
            failureReason = request.failureReason
            failureCode = request.failureCode?.rawValue
            self.failureLocation = failureLocation
        }
    }

    /// One compact JSON line, newline included: what `JSONEncoder` with sorted keys and
    /// unescaped slashes writes (the tests hold the two to the same bytes), written directly —
    /// an encoder per event cost 2.5% of the daemon's processor time under load.
    public func jsonLine() -> Data {
        var json = CompactJSONObject()
        json.add("eventName", eventName)
        json.add("eventSource", eventSource)
        json.add("eventTime", eventTime)
        json.add("eventVersion", eventVersion)
        json.add("failureCode", failureCode)
        json.add("failureLocation", failureLocation)
        json.add("failureReason", failureReason)
        json.add("inferenceId", inferenceId)
        json.add("invocationStatus", invocationStatus)
        json.add("receivedTime", receivedTime)
        var request = CompactJSONObject()
        request.add("accept", requestParameters.accept)
        request.add("contentType", requestParameters.contentType)
        request.add("endpointName", requestParameters.endpointName)
        request.add("inputLocation", requestParameters.inputLocation)
        json.add("requestParameters", object: request)
        if let responseBody {
            var body = CompactJSONObject()
            body.add("content", responseBody.content)
            body.add("encoding", responseBody.encoding)
            json.add("responseBody", object: body)
        }
        if let responseParameters {
            var response = CompactJSONObject()
            response.add("contentType", responseParameters.contentType)
            response.add("outputLocation", responseParameters.outputLocation)
            json.add("responseParameters", object: response)
        }
        var data = Data(json.finished())
        data.append(0x0A)
        return data
    }
}

/// A JSON object written field by field, in the order given (the caller sorts the keys), with
/// strings escaped as `JSONEncoder` escapes them (`"`, `\\`, and control characters; slashes
/// left as they are); a nil value leaves its key out.
struct CompactJSONObject {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    mutating func add(_ key: String, _ value: String?) {
        guard let value else { return }
        self.key(key)
        string(value)
    }

    mutating func add(_ key: String, object: CompactJSONObject) {
        self.key(key)
        bytes += object.finished()
    }

    func finished() -> [UInt8] { bytes + [UInt8(ascii: "}")] }

    private mutating func key(_ key: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        string(key)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
