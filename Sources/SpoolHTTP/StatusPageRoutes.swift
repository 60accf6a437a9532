import Foundation
import HTTPTypes
import Hummingbird
import SpoolCore
import SpoolDaemon

/// The status page on the listener (`GET /`, `GET /ui/…`): read-only, rendered from the ledger's
/// counts, never from a file under `.spool/`. With `[http] auth_token` set, a browser is asked
/// for it (HTTP Basic: any user name, the token as the password), so it never appears in the
/// page or in a URL.
enum StatusPageRoutes {
    /// Whether `path` is the page's (and so answers a browser's way when credentials are missing).
    static func isPage(_ path: String) -> Bool {
        path == "/" || path == "/ui" || path.hasPrefix("/ui/")
    }

    static func add(to router: Router<SpoolRequestContext>, engine: SpoolEngine) {
        let reader = StatusPageReader(engine: engine)
        router.get("/") { _, _ -> Response in
            let overview: StatusOverview
            do { overview = try await reader.overview() } catch {
                throw APIError.internalFailure("The ledger could not be read: \(error)")
            }
            return html(StatusPageHTML.overview(overview))
        }
        router.get("/ui") { _, _ in redirect("/") }
        router.get("/ui/requests") { request, _ -> Response in
            guard let id = request.uri.queryParameters.get("id")?.trimmingCharacters(in: .whitespaces), !id.isEmpty else {
                return redirect("/")
            }
            return redirect("/ui/requests/\(HTML.pathSegment(id))")
        }
        router.get("/ui/requests/:id") { _, context -> Response in
            let id = try context.parameters.require("id")
            let detail: RequestDetail?
            do { detail = try await reader.request(id: id) } catch {
                throw APIError.internalFailure("The ledger could not be read: \(error)")
            }
            guard let detail else { return html(StatusPageHTML.unknownRequest(id), status: .notFound) }
            return html(StatusPageHTML.request(detail))
        }
        router.get("/ui/app.css") { _, _ in asset(StatusPageAssets.style, type: "text/css; charset=utf-8") }
        router.get("/ui/app.js") { _, _ in asset(StatusPageAssets.script, type: "text/javascript; charset=utf-8") }
    }

    /// Headers every page carries: no inline script or style may run, nothing is framed or cached.
    static let pageHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xContentTypeOptions: "nosniff",
        .referrerPolicy: "no-referrer",
        .cacheControl: "no-store",
    ]

    static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = pageHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func asset(_ body: String, type: String) -> Response {
        var headers = pageHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=300"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// The answer to a browser without the token: 401 and a Basic challenge.
    static func challenge() -> Response {
        var headers = pageHeaders
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.wwwAuthenticate] = "Basic realm=\"Spool\", charset=\"UTF-8\""
        return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "The status page needs the API token (as the password).\n")))
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}
