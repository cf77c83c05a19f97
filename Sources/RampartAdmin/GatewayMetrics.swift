import Metrics
import NIOConcurrencyHelpers
import Prometheus
import RampartCore
import RampartDataPlane

/// Prometheus metrics of the gateway, read from its exact decision counters at each scrape (the
/// data plane counts in plain per-loop integers and never touches this registry). Labels are a
/// closed set: site, decision, reason, mode; never an address or a raw path.
final class GatewayMetrics: Sendable {
    /// The process's registry: swift-metrics is bootstrapped onto it (``bootstrap()``), so metrics
    /// recorded through the swift-metrics API elsewhere (the admin listener's refusals) appear here too.
    static let registry = PrometheusCollectorRegistry()
    private let registry = GatewayMetrics.registry
    private static let bootstrapped = NIOLockedValueBox(false)
    private let unauthorizedCounter: Metrics.Counter
    private let forbiddenCounter: Metrics.Counter

    /// Points swift-metrics at the Prometheus registry (once per process).
    static func bootstrap() {
        bootstrapped.withLockedValue { done in
            guard !done else { return }
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            done = true
        }
    }

    init() {
        Self.bootstrap()
        unauthorizedCounter = Metrics.Counter(label: "rampart_admin_unauthorized_total")
        forbiddenCounter = Metrics.Counter(label: "rampart_admin_forbidden_total")
    }

    /// Counts an admin call refused with 401 (no token, or a wrong one).
    func unauthorized() { unauthorizedCounter.increment() }

    /// Counts an admin call refused with 403 (the cookie without the dashboard's own origin).
    func forbidden() { forbiddenCounter.increment() }

    private func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int) {
        let c = labels.isEmpty ? registry.makeCounter(name: name, help: help) : registry.makeCounter(name: name, labels: labels, help: help)
        c.reset()
        c.increment(by: Int64(value))
    }

    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
        let g = labels.isEmpty ? registry.makeGauge(name: name, help: help) : registry.makeGauge(name: name, labels: labels, help: help)
        g.set(to: value)
    }

    func render(_ gateway: Gateway) async throws -> String {
        let stats = try await gateway.stats()
        let sites = try await gateway.siteStatus()
        let bans = try await gateway.bans()
        let decisions = "Requests by what the gateway decided."
        counter("rampart_requests_total", "Request heads received.", [], stats.requests)
        counter("rampart_decisions_total", decisions, [("decision", "proxied")], stats.proxied)
        counter("rampart_decisions_total", decisions, [("decision", "cache_fresh")], stats.cacheHits)
        counter("rampart_decisions_total", decisions, [("decision", "cache_stale")], stats.cacheStale)
        counter("rampart_decisions_total", decisions, [("decision", "challenged")], stats.challengesIssued)
        counter("rampart_decisions_total", decisions, [("decision", "rejected")], stats.rejections.values.reduce(0, +))
        for reason in RejectReason.allCases {
            counter("rampart_rejections_total", "Refusals by reason.", [("reason", reason.rawValue)], stats.rejections[reason] ?? 0)
        }
        counter("rampart_connections_accepted_total", "Client connections admitted.", [], stats.connectionsAccepted)
        counter("rampart_bans_issued_total", "Bans issued (automatic and by operators).", [], stats.bansIssued)
        if let k = stats.kernelBans {
            gauge("rampart_kernel_bans_active", "1 while bans are pushed into the nftables table, else 0.", [], k.active ? 1 : 0)
            counter("rampart_kernel_ban_elements_total", "Ban changes (additions and removals) written to the nftables sets.", [], k.elements)
            counter("rampart_kernel_ban_batches_total", "nftables transactions run.", [], k.batches)
            counter("rampart_kernel_ban_errors_total", "nftables transactions that failed.", [], k.errors)
            counter("rampart_kernel_ban_dropped_total", "Ban changes dropped because the kernel queue was full.", [], k.dropped)
        }
        gauge("rampart_bans_active", "Bans in force.", [], Double(bans.count))
        if let h = gateway.storeHealth {
            gauge("rampart_state_writable", "1 while the state database takes writes; 0 while they fail (they wait and are retried).", [], h.writable ? 1 : 0)
            gauge("rampart_state_pending_writes", "Bans, incidents and mode changes waiting to be written to the state database.", [], Double(h.pendingWrites))
            counter("rampart_state_write_failures_total", "State database writes that failed.", [], h.failedWrites)
            counter("rampart_state_writes_dropped_total", "Waiting state writes given up because too many waited.", [], h.droppedWrites)
        }
        counter("rampart_challenge_outcomes_total", "Challenge outcomes.", [("outcome", "issued")], stats.challengesIssued)
        counter("rampart_challenge_outcomes_total", "Challenge outcomes.", [("outcome", "clearance_issued")], stats.clearancesIssued)
        counter("rampart_challenge_outcomes_total", "Challenge outcomes.", [("outcome", "failed")], stats.challengeFailures)
        counter("rampart_cleared_requests_total", "Requests let through on a clearance while challenging.", [], stats.clearedRequests)
        counter("rampart_shadow_limited_total", "Requests a shadow-mode rule would have refused.", [], stats.shadowLimited)
        for s in sites {
            let site = [("site", s.site)]
            for mode in SiteMode.allCases {
                gauge("rampart_site_mode", "1 for the mode a site is in.", site + [("mode", mode.rawValue)], s.mode == mode ? 1 : 0)
            }
            gauge("rampart_site_requests_per_second", "Requests in the last complete second.", site, Double(s.requests))
            gauge("rampart_site_baseline_requests_per_second", "Learned calm-time rate.", site, s.baseline)
            gauge("rampart_site_origin_requests_per_second", "Requests sent to origins in the last second.", site, Double(s.toOrigin))
            gauge("rampart_site_challenged_per_second", "Challenges issued in the last second.", site, Double(s.challenged))
            gauge("rampart_site_limited_per_second", "Requests refused by rate limits in the last second.", site, Double(s.limited))
            gauge("rampart_site_cache_served_per_second", "Requests answered from the cache in the last second.", site, Double(s.cacheServed))
            gauge("rampart_site_distinct_sources", "Distinct client addresses in the last second.", site, Double(s.distinctSources))
            gauge("rampart_site_origin_queue_peak", "Most requests waiting for an origin connection in the last second.", site, Double(s.queuePeak))
            gauge("rampart_site_origin_latency_seconds", "Mean origin response time in the last second.", site, s.meanLatencyMillis / 1000)
            gauge("rampart_site_origin_concurrency_limit", "Requests the site's origins may serve at once, as learned from their answers.", site, Double(s.originLimit))
        }
        // The response-time histogram is kept as exact per-loop bucket counts; swift-prometheus has
        // no way to load counts into a histogram, so it is written here in the same text format.
        var text = registry.emitToString()
        text += "# HELP rampart_response_seconds Time from request head to the end of the response.\n"
        text += "# TYPE rampart_response_seconds histogram\n"
        var cumulative = 0
        for (bound, count) in zip(stats.latencyBounds, stats.latencyBuckets) {
            cumulative += count
            text += "rampart_response_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        text += "rampart_response_seconds_bucket{le=\"+Inf\"} \(stats.latencyCount)\n"
        text += "rampart_response_seconds_sum \(stats.latencySumSeconds)\n"
        text += "rampart_response_seconds_count \(stats.latencyCount)\n"
        return text
    }
}
