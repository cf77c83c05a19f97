import NIOCore

/// The gateway's background work, started and stopped on its own so that a service manager
/// (`rampart`'s `ServiceGroup`) can order it: health checks and detection start with the
/// listeners and stop only after the drain, so that the origins' state and the sites' modes stay
/// right for the requests still in flight.
extension Gateway {
    /// Starts (or restarts) the active origin health checks for the configuration in force.
    public func startHealthChecks() async {
        let checker = self.checker
        let config = runtimeConfig
        try? await acceptLoop.submit { checker.value.start(config) }.get()
    }

    /// Stops every health check.
    public func stopHealthChecks() async {
        let checker = self.checker
        try? await acceptLoop.submit { checker.value.stop() }.get()
    }

    /// Starts (or, after a reload, updates) detection: the per-site mode controllers and their
    /// one-second tick; restores stored mode overrides.
    public func startDetection() async {
        let detection = self.detection
        let source = runtimeConfig.source
        try? await acceptLoop.submit { detection.value.start(source) }.get()
    }

    /// Stops the detection tick (open incidents stay as they are).
    public func stopDetection() async {
        let detection = self.detection
        try? await acceptLoop.submit { detection.value.stop() }.get()
    }

    /// Reads the stored bans still in force into the ban list again: after a binary upgrade, once
    /// the previous process has written its last ones. Returns how many were read.
    public func restoreStoredBans() async -> Int {
        let bans = self.bans
        return (try? await acceptLoop.submit { bans.value.restoreStored() }.get()) ?? 0
    }

    /// The first half of a drain, for a binary upgrade: this process stops accepting (its listening
    /// channels close; the sockets stay open in the process they were handed to) and its
    /// connections are told to finish. ``drain(timeout:)`` later waits for them.
    public func stopAccepting() async {
        // The new process loaded the kernel ban table for itself: it must outlive this one.
        kernelBans?.keepTableOnExit()
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.draining = true }.get()
        }
        await pauseAccepting()
        let helpers = quiesce.withLockedValue { $0 }
        let channels = state.withLockedValue { $0.channels }
        for helper in helpers { helper.initiateShutdown(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }
        state.withLockedValue { $0.listeningDescriptors = [] }
    }

    /// Serves again on `descriptors` (copies of the sockets this process handed over) after a new
    /// process failed to take over: the binary upgrade is called off.
    public func resumeListening(adopting descriptors: [CInt]) async throws {
        quiesce.withLockedValue { $0 = [] }
        state.withLockedValue {
            $0.channels = []
            $0.gates = []
            $0.listeningDescriptors = []
        }
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.draining = false }.get()
        }
        try await bind(adopting: descriptors)
    }

    /// Stops taking connections off the listening sockets without closing them, and waits until
    /// every connection already taken has been set up on its event loop. NIO closes a connection
    /// whose set-up finishes after its listening channel closed; one that had already sent its
    /// request would be reset. Connections arriving meanwhile wait in the accept queue (for the
    /// process the sockets were handed to, or until the listener closes).
    func pauseAccepting() async {
        let channels = state.withLockedValue { $0.channels }
        for channel in channels {
            try? await channel.setOption(ChannelOptions.autoRead, value: false).get()
        }
        // A set-up runs on the connection's loop, then hops back to the accept loop: twice a task
        // through every loop and back lets each one queued before them finish.
        let acceptLoop = self.acceptLoop
        for _ in 0..<2 {
            for bound in contexts.values {
                try? await bound.eventLoop.submit {}.hop(to: acceptLoop).get()
            }
        }
    }
}
