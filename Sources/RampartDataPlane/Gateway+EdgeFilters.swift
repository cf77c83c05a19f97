import Logging
import NIOCore
import RampartCore

/// Wiring of the edge filters (docs/edge-filters.md): the kernel ban sink and the per-loop
/// country and network guard.
extension Gateway {
    /// Gives `context` (on its loop) a ``GeoFilter`` over `resolver` for `config`'s sites, or
    /// none when no geolocation is configured; the access log shares it.
    static func installGeo(_ resolver: GeoResolver?, config: GatewayConfig, on context: LoopContext) {
        guard let resolver else {
            context.geo = nil
            context.accessLog?.geo = nil
            return
        }
        let filter = GeoFilter(
            resolver: resolver, sites: config.sites.map(\.geoRules), loops: context.loopCount,
            cacheSlots: config.effectiveGeoIP?.cacheSize ?? 4096
        )
        context.geo = filter
        context.accessLog?.geo = filter
    }

    /// Loads the nftables table with the bans in force and, once it is in, sends every later ban
    /// and unban to it. On failure: one warning, and bans stay in user space.
    func startKernelBans(_ sink: KernelBanSink, ports: [Int]) async {
        let bans = self.bans
        let logger = self.logger
        let error: String? = await withCheckedContinuation { (result: CheckedContinuation<String?, Never>) in
            bans.eventLoop.execute {
                let registry = bans.value
                let now = Int64(bans.eventLoop.now.uptimeNanoseconds)
                let active = registry.list.active(now: now).map { (address: $0.source, seconds: Int(($0.until - now) / 1_000_000_000) + 1) }
                // Attached in the same loop turn as the snapshot: no ban falls between the two.
                registry.kernel = sink
                sink.start(ports: ports, bans: active) { result.resume(returning: $0) }
            }
        }
        guard let error else { return }
        try? await bans.eventLoop.submit { bans.value.kernel = nil }.get()
        let permission = error.contains("Operation not permitted") || error.contains("Permission denied")
        let hint = permission
            ? "the gateway needs CAP_NET_ADMIN for this (root, or AmbientCapabilities=CAP_NET_ADMIN in its systemd unit)"
            : "check that the kernel has nf_tables"
        logger.warning(
            "bans.kernel is nftables but the table cannot be loaded; bans stay in user space (\(hint))",
            metadata: ["table": "inet \(sink.config.table)", "error": "\(error)"]
        )
    }
}
