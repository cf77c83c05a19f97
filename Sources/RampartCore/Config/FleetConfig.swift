/// How a node joins a fleet (`fleet:` in the config, or `--fleet postgres://…` in one-site mode):
/// the PostgreSQL database every node shares, this node's name, and how it connects. Without it
/// the gateway is one node on SQLite and never opens a database connection.
///
/// The password is never kept in the config model: it is read from `password_file` or the
/// environment variable named by `password_env` when the node connects. A password written into
/// `url` is accepted (PostgreSQL clients take it) but `rampart check` warns, and
/// ``description`` never shows it.
public struct FleetConfig: Hashable, Sendable, CustomStringConvertible {
    /// How the connection is protected, with libpq's `sslmode` names.
    public enum TLSMode: String, Hashable, Sendable, CaseIterable {
        /// Plain TCP (a database on loopback or a private network).
        case disable
        /// TLS when the server offers it, plain otherwise.
        case prefer
        /// TLS always; the server's certificate is not checked.
        case require
        /// TLS always, the certificate checked against `ca_file` (or the system roots) and the host name.
        case verifyFull = "verify-full"
    }

    /// The database server's host name or address.
    public var host: String
    /// Its TCP port.
    public var port: Int = 5432
    /// The database every node of the fleet uses.
    public var database: String = "rampart"
    /// The role the nodes connect as.
    public var user: String = "rampart"
    /// A file holding the password (first line; trailing white space dropped).
    public var passwordFile: String? = nil
    /// The environment variable holding the password (default `RAMPART_FLEET_PASSWORD` when set).
    public var passwordEnv: String? = nil
    /// A password given inside the URL (discouraged; never logged).
    package var urlPassword: String? = nil
    /// How the connection is protected.
    public var tls: TLSMode = .prefer
    /// CA certificates (PEM) for `verify-full`; nil: the system's roots.
    public var caFile: String? = nil
    /// This node's name in the fleet (default: the host name). Unique per node.
    public var node: String
    /// Seconds between safety polls of the event table (NOTIFY is lost while disconnected).
    public var pollInterval: Double = 1
    /// Most decisions kept in the local outbox while the database is unreachable.
    public var outboxCapacity: Int = 10_000
    /// Days events are kept before pruning.
    public var retentionDays: Int = 7
    /// Seconds a mode raised by a node's detection holds on the other nodes unless renewed (the
    /// raising node renews it every third of this while its detector still holds it).
    public var modeTTL: Double = 30
    /// Seconds between publications of this node's traffic summary (a sliding last second) and
    /// reads of the others'.
    public var trafficInterval: Double = 0.25

    /// A fleet on `host` with every other setting at its default, this node named `node`.
    public init(host: String, node: String) {
        self.host = host
        self.node = node
    }

    /// The connection without any password: `postgres://user@host:port/db (tls: mode, node: name)`.
    public var description: String {
        "postgres://\(user)@\(HostPort(host: host, port: port))/\(database) (tls: \(tls.rawValue), node: \(node))"
    }

    /// The password from the URL, the file or the environment, in that order; nil for none (trust
    /// or certificate authentication).
    package func resolvePassword(environment: [String: String]) throws(FleetConfigError) -> String? {
        if let urlPassword { return urlPassword }
        if let passwordFile {
            guard let text = readTextFile(passwordFile) else { throw FleetConfigError("fleet.password_file: cannot read '\(passwordFile)'") }
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters()
        }
        let name = passwordEnv ?? "RAMPART_FLEET_PASSWORD"
        if let value = environment[name] { return value }
        if passwordEnv != nil { throw FleetConfigError("fleet.password_env: the environment variable \(name) is not set") }
        return nil
    }

    /// Parses `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=MODE&node=NAME]`
    /// (`postgresql://` too; `[::1]` for IPv6 hosts). Returns the config or why it was refused.
    public static func parse(url text: String, defaultNode: String) -> Result<FleetConfig, FleetConfigError> {
        var rest = Substring(text)
        guard let scheme = rest.range(of: "://"), ["postgres", "postgresql"].contains(rest[..<scheme.lowerBound].lowercased()) else {
            return .failure(FleetConfigError("expected postgres://USER@HOST:PORT/DB"))
        }
        rest = rest[scheme.upperBound...]
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user = "rampart"
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = percentDecoded(credentials[..<colon])
                password = percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                user = percentDecoded(credentials)
            }
        }
        guard !rest.isEmpty else { return .failure(FleetConfigError("the URL names no host")) }
        var config: FleetConfig
        if let hp = HostPort(parsing: String(rest)) {
            config = FleetConfig(host: hp.host, node: defaultNode)
            config.port = hp.port
        } else if rest.first != "[", !rest.contains(":") {
            config = FleetConfig(host: String(rest), node: defaultNode)
        } else if rest.first == "[", rest.last == "]" {
            config = FleetConfig(host: String(rest.dropFirst().dropLast()), node: defaultNode)
        } else {
            return .failure(FleetConfigError("cannot read the host and port '\(rest)'"))
        }
        guard (1...65535).contains(config.port) else { return .failure(FleetConfigError("port must be between 1 and 65535")) }
        guard !user.isEmpty else { return .failure(FleetConfigError("the user name is empty")) }
        config.user = user
        config.urlPassword = password
        if !path.isEmpty { config.database = percentDecoded(path) }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let key = String(parts[0])
            let value = parts.count > 1 ? percentDecoded(parts[1]) : ""
            switch key {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    return .failure(FleetConfigError("sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))"))
                }
                config.tls = mode
            case "node":
                guard validNodeName(value) else { return .failure(FleetConfigError(nodeNameRule)) }
                config.node = value
            case "sslrootcert":
                config.caFile = value
            default:
                return .failure(FleetConfigError("unknown URL parameter '\(key)' (known: sslmode, sslrootcert, node)"))
            }
        }
        return .success(config)
    }

    /// Node names: 1 to 63 letters, digits, '-', '_' or '.'.
    public static func validNodeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F || c == 0x2E
        }
    }

    static let nodeNameRule = "a node name has 1 to 63 letters, digits, '-', '_' or '.'"

    /// This machine's host name cut to a valid node name ("rampart" when it has none).
    public static func defaultNodeName(hostName: String) -> String {
        let kept = String(hostName.unicodeScalars.filter { $0.isASCII && (validNodeName(String($0))) }.prefix(63).map(Character.init))
        return kept.isEmpty ? "rampart" : kept
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: "%"), utf8.count >= 2,
               let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A `fleet:` setting that cannot be used, said in words.
public struct FleetConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, and what would be right.
    public var message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
