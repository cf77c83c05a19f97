import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import RampartCore
import RampartDataPlane

/// The admin listener: the dashboard, a JSON API, a per-second event stream and Prometheus
/// metrics, all behind one token (``AdminAccessPolicy`` says how it may be presented). Separate
/// from the data plane (its own port, default 127.0.0.1:9090); nothing here runs on a request's
/// path.
public final class AdminServer: Sendable {
    public static let version = "0.4.0"

    let gateway: Gateway
    let token: String
    let logger: Logger
    let metrics: GatewayMetrics
    /// Reloads the config file (nil when the gateway runs from flags).
    let reload: (@Sendable () async throws -> Void)?
    /// The state folder's signing key: incident reports derive their source pseudonyms from it
    /// (`reports.sources: hashed`); nil refuses hashed reports.
    let signingSecret: [UInt8]?
    /// This node's fleet status as JSON (`GET /api/fleet`); nil when the node is not in a fleet.
    let fleet: (@Sendable () -> [UInt8])?

    public init(gateway: Gateway, token: String, logger: Logger, reload: (@Sendable () async throws -> Void)?, signingSecret: [UInt8]? = nil, fleet: (@Sendable () -> [UInt8])? = nil) {
        self.fleet = fleet
        self.gateway = gateway
        self.token = token
        self.logger = logger
        self.metrics = GatewayMetrics()
        self.reload = reload
        self.signingSecret = signingSecret
    }

    /// The report's own CSP: inline style (and SVG) only; no script, nothing loaded, never framed.
    static let reportContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// Binds `address` and serves until the task is cancelled. `bound` gets the bound port first.
    public func run(address: HostPort, bound: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: AdminResponseHeaders())
        router.add(middleware: AdminAuthMiddleware(policy: AdminAccessPolicy(token: token), metrics: metrics))
        routes(router)
        var adminLogger = logger
        adminLogger.logLevel = max(logger.logLevel, .warning)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "rampart-admin"),
            onServerRunning: { channel in bound(channel.localAddress?.port ?? address.port) },
            logger: adminLogger
        )
        try await app.run()
    }

    /// `value` as sorted-key JSON, not to be cached.
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    /// A JSON error: `{"error": message}`.
    static func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(["error": message], status: status)
    }

    /// The dashboard page (or its variant for a refused token) with its own CSP.
    static func dashboard(_ html: String, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .contentSecurityPolicy: Dashboard.contentSecurityPolicy],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html))
        )
    }

    func routes(_ router: Router<BasicRequestContext>) {
        let gateway = self.gateway
        let metrics = self.metrics
        let reload = self.reload
        let logger = self.logger
        let token = self.token

        router.get("/") { request, _ -> Response in
            if let presented = request.uri.queryParameters.get("token") {
                // The printed link (or the sign-in form): a right token becomes the cookie (the
                // gateway's own copy, encoded; never the presented text) and the browser goes to
                // the clean URL, so the token leaves the address bar and the history.
                guard AdminToken.matches(presented, token) else {
                    metrics.unauthorized()
                    return Self.dashboard(Dashboard.refusedPage, status: .unauthorized)
                }
                return Response(
                    status: .seeOther,
                    headers: [.location: "/", .setCookie: AdminCookie.setCookie(token), .cacheControl: "no-store"]
                )
            }
            return Self.dashboard(Dashboard.page, status: .ok)
        }
        router.get("/openapi.yaml") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.text)))
        }
        router.get("/api/health") { _, _ -> Response in
            Self.json(["status": "ok", "version": Self.version])
        }
        router.get("/api/sites") { _, _ -> Response in
            Self.json(try await gateway.siteStatus().map(SiteView.init))
        }
        router.put("/api/sites/{site}/mode") { request, context -> Response in
            guard let site = context.parameters.get("site") else { return Self.problem(.badRequest, "site missing") }
            let body = try await request.body.collect(upTo: 4096)
            guard let m = try? JSONDecoder().decode(ModeRequest.self, from: Data(buffer: body)) else {
                return Self.problem(.badRequest, "expected {\"mode\": \"normal|elevated|under_attack|auto\"}")
            }
            let mode: SiteMode?
            if m.mode == "auto" {
                mode = nil
            } else if let parsed = SiteMode(rawValue: m.mode.replacingOccurrences(of: "-", with: "_")) {
                mode = parsed
            } else {
                return Self.problem(.badRequest, "unknown mode '\(m.mode)'; expected normal, elevated, under_attack or auto")
            }
            guard try await gateway.setMode(site: site, mode: mode) else { return Self.problem(.notFound, "no site named '\(site)'") }
            logger.notice("mode set through the admin API", metadata: ["site": "\(site)", "mode": "\(m.mode)"])
            return Self.json(try await gateway.siteStatus().filter { $0.site == site }.map(SiteView.init).first)
        }
        router.get("/api/bans") { request, _ -> Response in
            let filter = request.uri.queryParameters.get("filter") ?? ""
            let offset = max(0, request.uri.queryParameters.get("offset", as: Int.self) ?? 0)
            let limit = min(1000, max(1, request.uri.queryParameters.get("limit", as: Int.self) ?? 100))
            let all = try await gateway.bans().filter { filter.isEmpty || $0.address.contains(filter) || $0.reason.contains(filter) }
            let page = all.dropFirst(offset).prefix(limit)
            return Self.json(BanPage(total: all.count, offset: offset, bans: Array(page)))
        }
        router.post("/api/bans") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4096)
            guard let b = try? JSONDecoder().decode(BanRequest.self, from: Data(buffer: body)), let ip = IPAddress(b.address) else {
                return Self.problem(.badRequest, "expected {\"address\": \"IP\", \"ttl\": N, \"reason\": \"...\"}")
            }
            let ttl = min(max(b.ttlSeconds ?? 3600, 1), 30 * 86400)
            try await gateway.ban(ip, length: .seconds(Int64(ttl)), reason: b.reason ?? "manual")
            logger.notice("ban added through the admin API", metadata: ["client": "\(ip)", "seconds": "\(ttl)"])
            return Self.json(["address": ip.description, "ttl_seconds": String(ttl)], status: .created)
        }
        router.delete("/api/bans/{address}") { _, context -> Response in
            guard let text = context.parameters.get("address"), let ip = IPAddress(text) else { return Self.problem(.badRequest, "not an IP address") }
            guard try await gateway.unban(ip) else { return Self.problem(.notFound, "\(ip) is not banned") }
            return Response(status: .noContent)
        }
        router.get("/api/rules") { _, _ -> Response in
            Self.json(gateway.rules())
        }
        router.post("/api/rules") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4096)
            guard let r = try? JSONDecoder().decode(RuleRequest.self, from: Data(buffer: body)), let action = OperatorRule.Action(rawValue: r.action),
                let block = CIDR(r.block) else {
                return Self.problem(.badRequest, "expected {\"action\": \"allow|deny\", \"block\": \"CIDR or address\", \"site\": \"...\", \"ttl\": seconds, \"reason\": \"...\"}")
            }
            if let site = r.site, !gateway.currentConfig.sites.contains(where: { $0.name == site }) {
                return Self.problem(.notFound, "no site named '\(site)'")
            }
            let now = Int64(Date().timeIntervalSince1970)
            let ttl = r.ttl.map { min(max($0, 1), 365 * 86400) }
            let rule = OperatorRule(
                id: String(UInt64.random(in: 1...UInt64.max), radix: 16), action: action, cidr: block.description, site: r.site,
                until: ttl.map { now + Int64($0) } ?? 0, reason: String((r.reason ?? "manual").prefix(200)), by: "operator", decided: now
            )
            guard gateway.addRule(rule) else { return Self.problem(.conflict, "\(OperatorRule.capacity) runtime rules are kept already; remove some or put them in the config file") }
            return Self.json(rule, status: .created)
        }
        router.delete("/api/rules/{id}") { _, context -> Response in
            guard let id = context.parameters.get("id") else { return Self.problem(.badRequest, "rule id missing") }
            guard gateway.removeRule(id: id) else { return Self.problem(.notFound, "no rule '\(id)'") }
            return Response(status: .noContent)
        }
        router.get("/api/top") { request, _ -> Response in
            let n = min(100, max(1, request.uri.queryParameters.get("n", as: Int.self) ?? 10))
            return Self.json(try await gateway.top(n))
        }
        router.get("/api/incidents") { _, _ -> Response in
            Self.json(try await gateway.incidents().reversed().map(\.summary))
        }
        let signingSecret = self.signingSecret
        router.get("/api/incidents/{id}/report") { request, context -> Response in
            let formatText = request.uri.queryParameters.get("format") ?? "html"
            let stageText = request.uri.queryParameters.get("stage") ?? "notification"
            guard let format = ReportFormat(rawValue: formatText) else {
                return Self.problem(.badRequest, "unknown format '\(formatText)'; expected html, json, stix or misp")
            }
            guard let stage = ReportStage(rawValue: stageText) else {
                return Self.problem(.badRequest, "unknown stage '\(stageText)'; expected early-warning, notification or final")
            }
            guard let id = context.parameters.get("id", as: Int.self), let incident = try await gateway.incident(id: id) else {
                return Self.problem(.notFound, "no such incident")
            }
            let options = ReportOptions(config: gateway.currentConfig.reports, hashKey: signingSecret.map(ReportOptions.hashKey(fromSigningSecret:)))
            let text: String
            do {
                text = try IncidentReport.render(incident, stage: stage, format: format, options: options, now: Int64(Date().timeIntervalSince1970))
            } catch {
                return Self.problem(.conflict, "\(error)")
            }
            let name = format.fileName(incident: incident.id, stage: stage)
            var headers: HTTPFields = [
                .contentType: format.contentType, .cacheControl: "no-store",
                .contentDisposition: "\(format == .html ? "inline" : "attachment"); filename=\"\(name)\"",
            ]
            if format == .html { headers[.contentSecurityPolicy] = Self.reportContentSecurityPolicy }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/api/incidents/{id}") { _, context -> Response in
            guard let id = context.parameters.get("id", as: Int.self), let incident = try await gateway.incident(id: id) else {
                return Self.problem(.notFound, "no such incident")
            }
            return Self.json(incident)
        }
        router.post("/api/reload") { _, _ -> Response in
            guard let reload else { return Self.problem(.conflict, "the gateway runs from command-line flags; there is no config file to reload") }
            do {
                try await reload()
                return Self.json(["status": "reloaded"])
            } catch {
                return Self.problem(.unprocessableContent, "\(error)")
            }
        }
        let fleet = self.fleet
        router.get("/api/fleet") { _, _ -> Response in
            guard let json = fleet?() else { return Self.json(["enabled": false]) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
        }
        router.get("/api/stats") { _, _ -> Response in
            Self.json(try await StatsFrame.now(gateway))
        }
        router.get("/api/stream") { _, _ -> Response in
            // Server-sent events: one frame a second, for as long as the client listens (bounded
            // to a day; browsers reconnect by themselves).
            Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    for _ in 0..<86_400 {
                        let frame = try await StatsFrame.now(gateway)
                        let data = (try? JSONEncoder().encode(frame)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                        try await writer.write(ByteBuffer(string: "data: \(data)\n\n"))
                        try await Task.sleep(nanoseconds: 1_000_000_000)
                    }
                    try await writer.finish(nil)
                }
            )
        }
        router.get("/metrics") { _, _ -> Response in
            let text = try await metrics.render(gateway)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text))
            )
        }
    }
}

struct ModeRequest: Decodable { var mode: String }

/// `POST /api/rules`: an operator's runtime rule (``OperatorRule``); no `site` applies it to every
/// site, no `ttl` keeps it until removed.
struct RuleRequest: Decodable {
    var action: String
    var block: String
    var site: String?
    var ttl: Int?
    var reason: String?
}

/// `POST /api/bans`: the ban's length is `ttl` (seconds, as the command-line contract names it) or
/// `ttl_seconds` (the dashboard's and older scripts' name).
struct BanRequest: Decodable {
    var address: String
    var ttlSeconds: Int?
    var reason: String?
    enum CodingKeys: String, CodingKey {
        case address
        case ttl
        case ttlSeconds = "ttl_seconds"
        case reason
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        address = try c.decode(String.self, forKey: .address)
        ttlSeconds = try c.decodeIfPresent(Int.self, forKey: .ttl) ?? c.decodeIfPresent(Int.self, forKey: .ttlSeconds)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
    }
}

struct BanPage: Encodable {
    var total: Int
    var offset: Int
    var bans: [Gateway.Ban]
}

/// A site as the API shows it.
struct SiteView: Codable, Equatable {
    var site: String
    var mode: String
    var automaticMode: String
    var override: String?
    var tier: String
    var baseline: Double
    var requests: Int
    var toOrigin: Int
    var cacheServed: Int
    var challenged: Int
    var cleared: Int
    var limited: Int
    var distinctSources: Int
    var queuePeak: Int
    var originLatencyMs: Double
    var originLimit: Int

    init(_ s: SiteStatus) {
        site = s.site
        mode = s.mode.rawValue
        automaticMode = s.automaticMode.rawValue
        override = s.override?.rawValue
        tier = s.tier.rawValue
        baseline = (s.baseline * 10).rounded() / 10
        requests = s.requests
        toOrigin = s.toOrigin
        cacheServed = s.cacheServed
        challenged = s.challenged
        cleared = s.cleared
        limited = s.limited
        distinctSources = s.distinctSources
        queuePeak = s.queuePeak
        originLatencyMs = (s.meanLatencyMillis * 10).rounded() / 10
        originLimit = s.originLimit
    }

    enum CodingKeys: String, CodingKey {
        case site, mode, override, tier, baseline, requests, challenged, cleared, limited
        case automaticMode = "automatic_mode"
        case toOrigin = "to_origin"
        case cacheServed = "cache_served"
        case distinctSources = "distinct_sources"
        case queuePeak = "queue_peak"
        case originLatencyMs = "origin_latency_ms"
        case originLimit = "origin_limit"
    }
}

/// One second of the whole gateway, for the dashboard's stream.
struct StatsFrame: Codable {
    var time: Int64
    var sites: [SiteView]
    var top: [SiteTop]
    var bans: Int
    var incidents: [Incident]
    /// The state database's write health (absent when the gateway runs without one).
    var state: StoreHealth?

    static func now(_ gateway: Gateway) async throws -> StatsFrame {
        StatsFrame(
            time: Int64(Date().timeIntervalSince1970),
            sites: try await gateway.siteStatus().map(SiteView.init),
            top: try await gateway.top(10),
            bans: try await gateway.bans().count,
            incidents: Array(try await gateway.incidents().suffix(20).reversed().map(\.summary)),
            state: gateway.storeHealth
        )
    }
}
