import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import NIOCore
import ServiceLifecycle
import SpoolCore
import SpoolDaemon

/// The SageMaker-compatible HTTP API of a running Spool (`spool serve --listen`), built on
/// Hummingbird:
///
/// - `POST /endpoints/{EndpointName}/async-invocations` — InvokeEndpointAsync (202).
/// - `GET /ping` — 200 while the daemon runs and its ledger answers, else 503.
/// - `GET /metrics` — Prometheus text.
/// - `GET /requests/{InferenceId}` — the request as `spool status --json` shows it; 404 if unknown.
/// - `GET /` and `GET /ui/…` — the status page, for people (see `StatusPageRoutes`).
/// - Every other path — the S3 API on the bucket folders (see `S3API`); `GET /` from an S3
///   client (a signed request) is ListBuckets.
///
/// Errors are SageMaker's JSON errors (`{"__type":"ValidationError","message":…}`).
public struct SpoolHTTPServer: Sendable {
    public let engine: SpoolEngine
    public let address: ListenAddress
    let logger: Logger
    let onListening: @Sendable (ListenAddress) async -> Void
    /// HTTPS when set (`--tls-cert`, `--tls-key`).
    let tls: TLSConfiguration?

    /// - Parameters:
    ///   - tls: serve HTTPS with this configuration (see `TLSFiles.configuration`).
    ///   - onListening: called once the socket is bound, with the actual address (the kernel's
    ///     choice when the port was 0).
    public init(
        engine: SpoolEngine, address: ListenAddress, logger: Logger, tls: TLSConfiguration? = nil,
        onListening: @escaping @Sendable (ListenAddress) async -> Void = { _ in }
    ) {
        self.engine = engine
        self.address = address
        self.logger = logger
        self.tls = tls
        self.onListening = onListening
    }

    /// The service to pass to `SpoolDaemon.serve(options:services:)`. It stops with the daemon:
    /// from the moment graceful shutdown begins it answers 503 to `/ping` and new invocations
    /// (the engine says it is stopping), and it closes the socket only after the workers have
    /// finished, so clients see the documented 503 rather than refused connections.
    public var serviceConfiguration: ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: HTTPService(server: self), serviceName: "http")
    }

    func makeApplication(state: ServerState) throws -> some ApplicationProtocol {
        let router = Router(context: SpoolRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: AuthorizationMiddleware(token: engine.config.http.authToken, credentials: engine.config.http.credentials))
        router.add(middleware: S3Middleware(api: S3API(store: S3Store(layout: engine.layout, config: engine.config), logger: logger)))
        let invocations = AsyncInvocations(engine: engine, state: state, logger: logger)
        let engine = self.engine
        router.post("/endpoints/:name/async-invocations") { request, context in
            try await invocations.handle(request, endpointName: try context.parameters.require("name"))
        }
        router.get("/ping") { _, _ -> Response in
            guard !state.isStopping, !engine.isStopping else { throw APIError.unavailable("Spool is stopping.") }
            do { _ = try await engine.ledger.queueStats() } catch {
                throw APIError.unavailable("The ledger does not answer: \(error)")
            }
            return APIResponse.json(["Status": "Healthy"])
        }
        StatusPageRoutes.add(to: router, engine: engine)
        router.get("/metrics") { _, _ -> Response in
            // The metrics of `spool stats`, computed from the ledger, as `spool stats --prometheus` shows them.
            let text: String
            do { text = try await MetricsCollector(engine: engine).prometheusText() } catch {
                throw APIError.internalFailure("The ledger could not be read: \(error)")
            }
            return APIResponse.text(text, contentType: MetricsText.contentType)
        }
        router.get("/requests/:id") { _, context -> Response in
            let id = try context.parameters.require("id")
            let request: InferenceRequest?
            do { request = try await engine.ledger.request(id: id) } catch {
                throw APIError.internalFailure("The ledger could not be read: \(error)")
            }
            guard let request else { throw APIError.notFound("No request has InferenceId \(id).") }
            return APIResponse.json(RequestView(request, publisher: engine.publisher))
        }
        let onListening = self.onListening
        let logger = self.logger
        let requested = address
        let http = engine.config.http
        let connections = http.maxConnections ?? DescriptorLimit.connections(for: DescriptorLimit.current)
        let http1 = HTTPServerBuilder.http1(configuration: .init(
            additionalChannelHandlers: [
                MalformedRequestHandler(), RequestHeadTimeoutHandler(timeout: .seconds(Int64(http.idleTimeoutSeconds))),
                ContinueHandler(),
            ],
            idleTimeout: .seconds(Int64(http.idleTimeoutSeconds))))
        let scheme = tls == nil ? "http" : "https"
        return Application(
            router: router,
            server: try tls.map { try HTTPServerBuilder.tls(http1, tlsConfiguration: $0) } ?? http1,
            configuration: ApplicationConfiguration(
                address: .hostname(address.host, port: address.port), serverName: "spool",
                availableConnectionsDelegate: .maximum(connections, logger: logger)),
            onServerRunning: { channel in
                let bound = ListenAddress(host: requested.host, port: channel.localAddress?.port ?? requested.port)
                logger.info("HTTP API listening", metadata: ["spool.http.address": "\(scheme)://\(bound)"])
                await onListening(bound)
            },
            logger: logger
        )
    }
}

/// Runs the Hummingbird application until graceful shutdown, marking the server as stopping
/// first so new invocations get 503 while the ones in flight finish.
struct HTTPService: Service {
    let server: SpoolHTTPServer

    func run() async throws {
        let state = ServerState()
        let application = try server.makeApplication(state: state)
        try await withGracefulShutdownHandler {
            try await application.run()
        } onGracefulShutdown: {
            state.markStopping()
        }
    }
}

/// The certificate and key files of `--tls-cert` and `--tls-key`, read once at start.
public enum TLSFiles {
    /// A server configuration from PEM files: the certificate chain (leaf first) and its key.
    /// - Throws: a message naming the file and the reason.
    public static func configuration(certificate: String, key: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificate) } catch {
            throw TLSFileError("--tls-cert \(certificate): not a readable PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw TLSFileError("--tls-cert \(certificate): holds no certificate") }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
            throw TLSFileError("--tls-key \(key): not a readable PEM private key (\(error))")
        }
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
    }

    public struct TLSFileError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
