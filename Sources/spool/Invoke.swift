import ArgumentParser
import Foundation
import Logging
import SpoolCore
import SpoolDaemon

#if canImport(Glibc)
import Glibc
#endif

struct Invoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Queue a payload from a file or standard input (-); prints its InferenceId and locations.",
        discussion: "A running `spool serve` (or the next `spool drain`) runs it. Its output is outputs/<InferenceId>.out."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "The payload file, or - for standard input.")
    var file: String

    @Option(help: "The endpoint to run it on.")
    var endpoint = "default"

    @Option(help: "The payload's MIME type (SageMaker ContentType).")
    var contentType: String?

    @Option(help: "The MIME type wanted back (SageMaker Accept).")
    var accept: String?

    @Option(help: "Passed to the model as is (SageMaker CustomAttributes, ≤1024 ASCII).")
    var customAttributes: String?

    @Option(help: "Your id for the request (1–64 printable ASCII); generated when absent.")
    var inferenceId: String?

    @Option(help: ArgumentHelp("Seconds it may wait in the queue, 60–21600.", valueName: "seconds"))
    var ttl: Int?

    @Option(help: ArgumentHelp("Seconds the model may take, 1–3600.", valueName: "seconds"))
    var timeout: Int?

    var metadata: RequestMetadata {
        RequestMetadata(
            contentType: contentType, accept: accept, customAttributes: customAttributes,
            inferenceId: inferenceId, requestTTLSeconds: ttl, invocationTimeoutSeconds: timeout
        )
    }

    func validate() throws {
        if let reason = metadata.validationError() { throw ValidationError(reason) }
    }

    func run() async throws {
        let config = try options.loadConfig()
        guard let endpointConfig = config.endpoint(named: endpoint) else {
            throw CLIError.usage("unknown endpoint \"\(endpoint)\" (configured: \(config.endpoints.map(\.name).joined(separator: ", ")))")
        }
        let input: Int32
        if file == "-" {
            input = STDIN_FILENO
        } else {
            input = Glibc.open(file, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw CLIError.usage("cannot read \(file): \(String(cString: strerror(errno)))") }
            var info = stat()
            guard fstat(input, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                close(input)
                throw CLIError.usage("\(file) is not a regular file")
            }
        }
        defer { if input != STDIN_FILENO { close(input) } }
        let ledger = try await options.openLedger()
        if let id = inferenceId, try await ledger.request(id: id) != nil {
            throw CLIError.usage("InferenceId \(id) is already used")
        }
        let admissions: Admissions
        do {
            admissions = try Admissions.standalone(layout: options.layout, config: config, ledger: ledger, logger: Logger(label: "spool"))
        } catch {
            throw CLIError.failure("cannot open the spool at \(options.layout.root): \(error)")
        }
        guard let request = try await admissions.submit(from: input, endpoint: endpointConfig, metadata: metadata, source: .invoke) else {
            throw CLIError.failure("the request could not be recorded")
        }
        struct Response: Encodable {
            var InferenceId: String
            var OutputLocation: String
            var FailureLocation: String
        }
        Output.json(Response(
            InferenceId: request.id,
            OutputLocation: options.layout.path(request.outputLocation),
            FailureLocation: options.layout.path(request.failureLocation)
        ))
    }
}
