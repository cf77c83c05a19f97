import HTTPTypes
import Hummingbird

/// Headers on every admin response, errors included: no other site may embed a response
/// (`Cross-Origin-Resource-Policy: same-origin`), frame the dashboard (`X-Frame-Options: DENY`,
/// CSP `frame-ancestors 'none'`) or have a browser guess a response's type
/// (`X-Content-Type-Options: nosniff`). The dashboard page keeps its own, longer CSP.
struct AdminResponseHeaders<Context: RequestContext>: RouterMiddleware {
    /// The CSP of every response that does not set one: nothing loads, nothing frames it.
    static var contentSecurityPolicy: String { "default-src 'none'; frame-ancestors 'none'" }
    /// `X-Frame-Options` (swift-http-types names no constant for it).
    static var xFrameOptions: HTTPField.Name { HTTPField.Name("X-Frame-Options")! }

    /// Runs the rest of the chain, then sets the headers on whatever it answered.
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            // Router errors (no such route, wrong method) get the same headers as answers.
            response = try error.response(from: request, context: context)
        }
        response.headers[.crossOriginResourcePolicy] = "same-origin"
        response.headers[Self.xFrameOptions] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        }
        return response
    }
}
