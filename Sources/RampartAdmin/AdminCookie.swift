import Foundation

/// The dashboard's session cookie: the admin token, set by the printed link (`/?token=`) after the
/// token was checked. HttpOnly (scripts cannot read it), SameSite=Strict (no other site's page
/// makes the browser send it), Path=/ and no Domain (this host only).
package enum AdminCookie {
    /// The cookie's name.
    package static let name = "rampart_admin"

    /// The `Set-Cookie` value for `token`: the token percent-encoded (``AdminToken/encoded(_:)``),
    /// so only token characters ever reach the header, whatever the token holds.
    package static func setCookie(_ token: String) -> String {
        "\(name)=\(AdminToken.encoded(token)); Path=/; HttpOnly; SameSite=Strict"
    }

    /// Every value of this cookie in the request's `Cookie` headers, decoded. A browser may send
    /// several (another application on the same host name can set one with this name too), so the
    /// caller accepts the request when any of them is the token.
    package static func values(in cookieHeaders: [String]) -> [String] {
        var found: [String] = []
        for header in cookieHeaders {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                guard pair.hasPrefix(name + "=") else { continue }
                let raw = String(pair.dropFirst(name.count + 1))
                found.append(raw.removingPercentEncoding ?? raw)
            }
        }
        return found
    }
}
