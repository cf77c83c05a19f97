import RampartDataPlane
import ServiceLifecycle

/// The active origin health checks as a service. They start with the gateway and stop after its
/// drain, so that requests still in flight are routed on fresh origin state.
struct HealthCheckService: Service, CustomStringConvertible {
    let gateway: Gateway

    var description: String { "health-checks" }

    func run() async throws {
        await gateway.startHealthChecks()
        try? await gracefulShutdown()
        await gateway.stopHealthChecks()
    }
}
