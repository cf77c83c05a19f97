/// Who may call the admin API, decided from a request's head alone (no socket, no clock), so the
/// rules read in one place:
///
/// - `GET /` (the dashboard shell; its `?token=` link is checked by the route) and
///   `GET /openapi.yaml` are open.
/// - Every other call needs the token: in `Authorization: Bearer` (scripts, the CLI, Prometheus),
///   or in the dashboard's cookie. A query parameter never counts.
/// - A call that changes state (any method but GET and HEAD) made with the cookie must come from
///   the dashboard's own page: its `Origin` (or, when a browser sent none, its `Referer`) is this
///   listener's own `scheme://host:port` as the request's `Host` names it, and a body is
///   `application/json`. A browser sends the cookie with a form or `fetch` that another page on
///   the same host name (another port is still "same-site") makes; it does not let that page
///   choose `Origin`, nor send a JSON body to another origin without asking it first.
package struct AdminAccessPolicy: Sendable {
    /// What the listener does with a request.
    package enum Decision: Equatable, Sendable {
        /// Served.
        case allowed
        /// 401: no token, or a wrong one.
        case unauthorized
        /// 403: the cookie is right but the call does not come from the dashboard; the message
        /// says what was missing.
        case forbidden(String)
    }

    /// The parts of a request the decision reads.
    package struct Request: Sendable {
        /// `GET`, `POST`, ...
        package var method: String
        /// The path without the query.
        package var path: String
        /// The `Authorization` header, if any.
        package var authorization: String?
        /// Every `rampart_admin` cookie value the request carries, decoded.
        package var cookies: [String]
        /// The `Origin` header, if any.
        package var origin: String?
        /// The `Referer` header, if any.
        package var referer: String?
        /// The `Host` header (the request's authority), if any.
        package var host: String?
        /// More than one `Host` header: the request names no single origin.
        package var extraHost: Bool
        /// The listener's scheme as the browser reached it (`http`).
        package var scheme: String
        /// The `Content-Type` header, if any.
        package var contentType: String?
        /// True when the request has a body (a non-zero `Content-Length`, or `Transfer-Encoding`).
        package var hasBody: Bool

        /// A request's facts, as ``AdminAuthMiddleware`` reads them from Hummingbird's request.
        package init(
            method: String, path: String, authorization: String?, cookies: [String], origin: String?, referer: String?,
            host: String?, extraHost: Bool, scheme: String, contentType: String?, hasBody: Bool
        ) {
            self.method = method
            self.path = path
            self.authorization = authorization
            self.cookies = cookies
            self.origin = origin
            self.referer = referer
            self.host = host
            self.extraHost = extraHost
            self.scheme = scheme
            self.contentType = contentType
            self.hasBody = hasBody
        }
    }

    /// Paths anyone may read: the dashboard shell (which asks for the token) and the API document.
    static let openPaths: Set<String> = ["/", "/openapi.yaml"]

    /// The admin token.
    let token: String

    /// The policy for the admin token `token`.
    package init(token: String) {
        self.token = token
    }

    /// True for methods that only read (GET, HEAD): the cookie alone is enough for them.
    package static func isSafe(_ method: String) -> Bool { method == "GET" || method == "HEAD" }

    /// The decision for one request.
    package func decide(_ request: Request) -> Decision {
        let safe = Self.isSafe(request.method)
        if safe, Self.openPaths.contains(request.path) { return .allowed }
        if let auth = request.authorization, auth.count > 7, auth.prefix(7).lowercased() == "bearer " {
            let presented = auth.dropFirst(7).trimmingCharacters(in: .whitespaces)
            return AdminToken.matches(presented, token) ? .allowed : .unauthorized
        }
        // Every value is compared, so the time taken does not tell which one came close.
        var valid = false
        for value in request.cookies where AdminToken.matches(value, token) { valid = true }
        guard valid else { return .unauthorized }
        if safe { return .allowed }
        return Self.sameOriginProblem(request).map { .forbidden($0) } ?? .allowed
    }

    /// Why a cookie-authenticated call that changes state does not come from the dashboard, or
    /// nil when it does.
    static func sameOriginProblem(_ request: Request) -> String? {
        guard let host = request.host, !host.isEmpty, !request.extraHost else {
            return "the request names no single Host"
        }
        let own = "\(request.scheme.lowercased())://\(host.lowercased())"
        if let origin = request.origin {
            guard origin.lowercased() == own else {
                return "cross-origin call refused: with the dashboard cookie, Origin must be \(own); scripts send Authorization: Bearer"
            }
        } else if let referer = request.referer {
            guard Self.origin(ofURL: referer)?.lowercased() == own else {
                return "cross-origin call refused: with the dashboard cookie, Referer must be on \(own); scripts send Authorization: Bearer"
            }
        } else {
            return "with the dashboard cookie, a call that changes state needs an Origin or Referer header; scripts send Authorization: Bearer"
        }
        if request.hasBody || request.contentType != nil {
            let media = request.contentType?.split(separator: ";", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces).lowercased()
            guard media == "application/json" else { return "expected Content-Type: application/json" }
        }
        return nil
    }

    /// `scheme://authority` of an absolute URL (what a `Referer` holds), or nil when it is not one.
    static func origin(ofURL url: String) -> String? {
        guard let separator = url.range(of: "://") else { return nil }
        let scheme = url[..<separator.lowerBound]
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else { return nil }
        let rest = url[separator.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        return "\(scheme)://\(authority)"
    }
}
