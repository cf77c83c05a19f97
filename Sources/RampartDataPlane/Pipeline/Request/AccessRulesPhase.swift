import NIOCore
import RampartCore

/// Access rules. Every routed request is first counted for the site's detector (sources, subnets,
/// targets, sampled paths, agents and fingerprints); a source an operator's runtime deny rule
/// names is refused (403, `POST /api/rules`); then the site's rules by TLS stack apply (a
/// denied fingerprint is refused here, a challenged one meets the challenge whatever the mode),
/// then its rules by country and network (docs/edge-filters.md): deny (403), limit (429 over the
/// rule's per-source rate), challenge (whatever the mode), allow.
enum AccessRulesPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let fingerprint = request.connection.fingerprint
        site.defence.record(client: request.client, method: request.head.method, target: request.accepted.target, headers: request.head.headers, fingerprint: fingerprint)
        if !loop.operatorRules.isEmpty, loop.operatorRules.denies(request.client, site: site.name, now: unixNow()) {
            return .respond(.refusal(.ruleDenied))
        }
        request.fingerprintVerdict = site.config.fingerprints.verdict(fingerprint)
        if request.fingerprintVerdict == .deny {
            return .respond(.refusal(.fingerprintDenied, detail: fingerprint))
        }
        guard let geo = loop.geo else { return .next }
        let place = geo.lookup(request.client)
        site.defence.recordPlace(country: place.country?.description, asn: place.asn)
        request.geoVerdict = geo.verdict(site: site.configIndex, client: request.client, place: place, now: Int64(now.uptimeNanoseconds))
        switch request.geoVerdict {
        case .deny: return .respond(.refusal(.geoDenied))
        case .limited(let retry): return .respond(.refusal(.rateLimited, retryAfter: retry, detail: "geo_rules limit"))
        case .pass, .challenge: return .next
        }
    }
}
