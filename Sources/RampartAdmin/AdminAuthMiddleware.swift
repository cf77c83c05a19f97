import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Carries out ``AdminAccessPolicy`` for every request of the admin listener: 401 without a valid
/// token, 403 for a cookie-authenticated call that does not come from the dashboard's own page.
/// Both answers are JSON and both are counted (`rampart_admin_unauthorized_total`,
/// `rampart_admin_forbidden_total`); neither is logged, so a flood of them cannot fill the log.
struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The rules (and the token).
    let policy: AdminAccessPolicy
    /// Where refusals are counted.
    let metrics: GatewayMetrics

    /// Passes an allowed request on; answers a refused one itself.
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch policy.decide(Self.facts(of: request)) {
        case .allowed:
            return try await next(request, context)
        case .unauthorized:
            metrics.unauthorized()
            var response = AdminServer.problem(.unauthorized, "a valid admin token is required")
            response.headers[.wwwAuthenticate] = "Bearer realm=\"rampart\""
            return response
        case .forbidden(let reason):
            metrics.forbidden()
            return AdminServer.problem(.forbidden, reason)
        }
    }

    /// `Host` (swift-http-types marks its constant unavailable: HTTP/1 `Host` becomes the authority).
    static var host: HTTPField.Name { HTTPField.Name("Host")! }

    /// What the policy reads from a Hummingbird request. The HTTP/1 `Host` header arrives as the
    /// request's authority; a second `Host` stays among the header fields.
    static func facts(of request: Request) -> AdminAccessPolicy.Request {
        let headers = request.headers
        let length = headers[.contentLength].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
        return AdminAccessPolicy.Request(
            method: request.method.rawValue,
            path: request.uri.path,
            authorization: headers[.authorization],
            cookies: AdminCookie.values(in: headers[values: .cookie]),
            origin: headers[.origin],
            referer: headers[.referer],
            host: request.head.authority,
            extraHost: headers[Self.host] != nil,
            scheme: request.head.scheme ?? "http",
            contentType: headers[.contentType],
            hasBody: length > 0 || headers[.transferEncoding] != nil
        )
    }
}
