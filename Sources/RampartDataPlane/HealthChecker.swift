import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartCore

/// Active health checks: every origin of every site that enables them gets a `GET path` each
/// interval; its verdict (with the site's up/down thresholds) is copied to every event loop.
/// Runs on one loop; its state is confined there.
final class HealthChecker {
    private let loop: any EventLoop
    private let logger: Logger
    private let publish: @Sendable (_ site: String, _ origin: HostPort, _ up: Bool) -> Void
    private var tasks: [RepeatedTask] = []
    private var states: [String: OriginHealth] = [:]

    init(loop: any EventLoop, logger: Logger, publish: @escaping @Sendable (String, HostPort, Bool) -> Void) {
        self.loop = loop
        self.logger = logger
        self.publish = publish
    }

    /// (Re)starts checks for `config`'s sites. Origins that stay keep their state.
    func start(_ runtime: RuntimeConfig) {
        stop()
        var kept: [String: OriginHealth] = [:]
        for (s, site) in runtime.sites.enumerated() where site.healthCheck.enabled {
            for (o, origin) in site.origins.enumerated() {
                let tls = runtime.originTLS[s][o]
                let serverName = origin.tlsServerName
                let key = "\(site.name)|\(origin.address)"
                var state = states[key] ?? OriginHealth(active: site.healthCheck, passive: site.passive)
                state.active = site.healthCheck
                kept[key] = state
                let bound = NIOLoopBound(self, eventLoop: loop)
                let siteName = site.name
                let check = site.healthCheck
                let task = loop.scheduleRepeatedTask(
                    initialDelay: .milliseconds(Int64.random(in: 0...500)),
                    delay: site.healthCheck.interval
                ) { _ in
                    bound.value.probe(site: siteName, origin: origin.address, tls: tls, serverName: serverName, check: check, key: key)
                }
                tasks.append(task)
            }
        }
        states = kept
    }

    /// Stops every check.
    func stop() {
        for t in tasks { t.cancel() }
        tasks.removeAll()
    }

    private func probe(site: String, origin: HostPort, tls: NIOSSLContext?, serverName: String?, check: HealthCheckConfig, key: String) {
        let promise = loop.makePromise(of: HTTPResponseStatus.self)
        let timeout = loop.scheduleTask(in: check.timeout) { promise.fail(ProbeError.timeout) }
        let request = HTTPRequestHead(
            version: .http1_1,
            method: .GET,
            uri: check.path,
            headers: ["Host": origin.host, "User-Agent": "rampart-health-check", "Connection": "close"]
        )
        let connect = ClientBootstrap(group: loop)
            .connectTimeout(check.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(request: request, promise: promise))
                }
            }
            .connect(host: origin.host, port: origin.port)
        connect.whenFailure { promise.fail($0) }
        promise.futureResult.assumeIsolated().whenComplete { result in
            timeout.cancel()
            connect.whenSuccess { $0.close(promise: nil) }
            let healthy: Bool
            if case .success(let status) = result { healthy = status.code < 500 } else { healthy = false }
            guard var state = self.states[key] else { return }
            let change = state.checkFinished(healthy: healthy)
            self.states[key] = state
            if let up = change {
                if up {
                    self.logger.notice("origin is up", metadata: ["site": "\(site)", "origin": "\(origin)"])
                } else {
                    self.logger.warning("origin is down", metadata: ["site": "\(site)", "origin": "\(origin)", "check": "GET \(check.path)"])
                }
                self.publish(site, origin, up)
            }
        }
    }
}

private enum ProbeError: Error { case timeout, closed }

/// Sends one request and reports the response status.
private final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let request: HTTPRequestHead
    private let promise: EventLoopPromise<HTTPResponseStatus>

    init(request: HTTPRequestHead, promise: EventLoopPromise<HTTPResponseStatus>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            promise.succeed(head.status)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ProbeError.closed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HealthChecker: Sendable {}
