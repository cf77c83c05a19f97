import RampartDataPlane
import ServiceLifecycle

/// Detection as a service: the per-site mode controllers and their one-second tick (surges,
/// modes, incidents). Stops after the gateway's drain so that an attack still answered during the
/// drain keeps its mode.
struct ModeDetectionService: Service, CustomStringConvertible {
    let gateway: Gateway

    var description: String { "detection" }

    func run() async throws {
        await gateway.startDetection()
        try? await gracefulShutdown()
        await gateway.stopDetection()
    }
}
