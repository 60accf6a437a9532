import SpoolCore

/// What one round of scaling does to a container endpoint's instances, decided from their state
/// alone: a value, with no processes and no clock of its own (times are durations on the pool's clock), so that its rules are tested on
/// their own (`ScalingPolicyTests`). `InstancePool.tick` applies it.
///
/// The rules, in order:
/// 1. Instances are started until `min` run (not counting those being stopped).
/// 2. One more is started when the endpoint's backlog, with the requests in flight and those
///    waiting for a slot, exceeds the slots of the instances running or starting.
/// 3. While nothing is queued or waiting, a ready instance idle (nothing in flight) for
///    `idleSeconds` is stopped while more than `min` run, first positions first. (Work waiting
///    would be given to it at once: stopping it then would only start another.)
///
/// An instance index stays held while its instance stops, so no more than `max` are ever started
/// or stopping at once: starting needs a free index.
struct ScalingPolicy: Sendable, Equatable {
    enum Phase: Sendable { case starting, ready, stopping }

    /// What the policy sees of one instance.
    struct Instance: Sendable, Equatable {
        var phase: Phase
        var inFlight: Int
        /// Since when nothing has been in flight (meaningful when `inFlight` is 0), on the pool's
        /// clock (`SpoolClock.uptime`).
        var idleSince: Duration
    }

    /// Instances to start, and the positions (in the `instances` given) of those to stop.
    struct Decision: Sendable, Equatable {
        var start = 0
        var stop: [Int] = []
    }

    var limits: InstanceConfig
    /// Concurrent invocations per instance.
    var slots: Int

    func decide(instances: [Instance], waiting: Int, backlog: Int, now: Duration) -> Decision {
        var decision = Decision()
        var held = instances.count
        var live = instances.count { $0.phase != .stopping }
        while live < limits.min, held < limits.max {
            decision.start += 1
            live += 1
            held += 1
        }
        let busy = instances.reduce(0) { $0 + $1.inFlight } + waiting
        if backlog > 0, busy + backlog > live * slots, live < limits.max, held < limits.max {
            decision.start += 1
            live += 1
            held += 1
        }
        guard backlog == 0, waiting == 0 else { return decision }
        for (position, instance) in instances.enumerated() where live > limits.min {
            guard instance.phase == .ready, instance.inFlight == 0,
                  now - instance.idleSince >= .seconds(limits.idleSeconds) else { continue }
            decision.stop.append(position)
            live -= 1
        }
        return decision
    }
}
