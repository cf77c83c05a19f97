import Foundation

/// The admin token and where it came from: `RAMPART_ADMIN_TOKEN`, else the config's
/// (`admin.token` or `admin.token_file`), else `admin.token` in the state folder, made on first
/// start (32 random bytes as hex, mode 0600). Where it came from decides whether the gateway may
/// print it at start: a token printed on every start ends up in every log file that captures
/// standard output.
package struct AdminToken: Sendable {
    /// Where a token came from.
    package enum Source: Sendable, Equatable {
        /// The `RAMPART_ADMIN_TOKEN` environment variable.
        case environment
        /// The config file (`admin.token` or `admin.token_file`).
        case config
        /// The state folder's `admin.token`, made on an earlier start.
        case stateFile(path: String)
        /// The state folder's `admin.token`, made on this start.
        case generated(path: String)
    }

    /// The environment variable that sets the token; it wins over the config and the state folder.
    package static let environmentVariable = "RAMPART_ADMIN_TOKEN"
    /// The generated token's file name inside the state folder.
    package static let fileName = "admin.token"
    /// Shortest token read back from `admin.token` (shorter files are replaced by a new token).
    static let minimumLength = 16

    /// The token itself. Never logged.
    package let value: String
    /// Where it came from.
    package let source: Source

    /// True when the token was made on this start: the operator has not seen it yet.
    package var isNew: Bool {
        if case .generated = source { return true }
        return false
    }

    /// Where an operator finds the token, without its value: for the start line and error messages.
    package var whereToFind: String {
        switch source {
        case .environment: return "the \(Self.environmentVariable) environment variable"
        case .config: return "the config file (admin.token or admin.token_file)"
        case .stateFile(let path), .generated(let path): return path
        }
    }

    /// Resolves the token for a gateway starting with `configured` (from the config) and the
    /// state folder `stateFolder`; writes a new `admin.token` when neither the environment nor the
    /// config gives one and the folder holds none.
    package static func resolve(configured: String?, stateFolder: String) throws -> AdminToken {
        if let env = ProcessInfo.processInfo.environment[environmentVariable], !env.isEmpty {
            return AdminToken(value: env, source: .environment)
        }
        if let configured, !configured.isEmpty { return AdminToken(value: configured, source: .config) }
        let path = (stateFolder as NSString).appendingPathComponent(fileName)
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.count >= minimumLength { return AdminToken(value: text, source: .stateFile(path: path)) }
        }
        let token = generate()
        try SecretFile.replace(at: path, with: Array((token + "\n").utf8))
        return AdminToken(value: token, source: .generated(path: path))
    }

    /// A new token: 32 random bytes as 64 lowercase hex characters.
    package static func generate() -> String {
        SecretFile.randomBytes(32).map { String(format: "%02x", $0) }.joined()
    }

    /// The token as it may appear in a URL query or a cookie value: every byte outside
    /// `A-Z a-z 0-9 - . _ ~` percent-encoded, so no token (whatever an operator configured) can
    /// add parameters to a link or attributes to a `Set-Cookie` header. Generated tokens are hex
    /// and come out unchanged.
    package static func encoded(_ token: String) -> String {
        var out = ""
        for byte in token.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Compares a presented token with the real one in time that depends only on their lengths,
    /// never on where they first differ.
    package static func matches(_ presented: String, _ token: String) -> Bool {
        let x = Array(presented.utf8)
        let y = Array(token.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}
