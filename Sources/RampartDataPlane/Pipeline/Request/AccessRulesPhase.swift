import RampartCore

/// Access rules. Every routed request is first counted for the site's detector (sources, subnets,
/// targets, sampled paths, agents and fingerprints); then the site's rules by TLS stack apply: a
/// denied fingerprint is refused here, a challenged one meets the challenge whatever the mode.
enum AccessRulesPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        let site = request.site!
        let fingerprint = request.connection.fingerprint
        site.defence.record(client: request.client, method: request.head.method, target: request.accepted.target, headers: request.head.headers, fingerprint: fingerprint)
        request.fingerprintVerdict = site.config.fingerprints.verdict(fingerprint)
        if request.fingerprintVerdict == .deny {
            return .respond(.refusal(.fingerprintDenied, detail: fingerprint))
        }
        return .next
    }
}
