/// Where a request is in its life. The raw values are the strings the ledger's `CHECK` allows.
///
///     queued → running → succeeded | failed | expired | cancelled
///     running → queued      (interrupted by shutdown or crash; no attempt used)
///     failed | expired | cancelled → queued   (`spool retry`)
public enum RequestState: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
    case queued
    case running
    case succeeded
    case failed
    case expired
    case cancelled

    /// A final state: the request has a result or a marker and nothing will run it again on its own.
    public var isTerminal: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .failed, .expired, .cancelled: true
        }
    }
}

/// Something that happens to a request.
public enum RequestEvent: Sendable, Equatable {
    /// A worker took the request from the queue.
    case claim
    /// The model produced a complete output.
    case succeed
    /// The attempt failed. `retryable` failures go back to the queue while attempts remain.
    case fail(code: FailureCode, retryable: Bool)
    /// The request waited in the queue past its TTL.
    case expire
    /// The user cancelled the request.
    case cancel
    /// The process running the request stopped (shutdown or crash) before it finished.
    case interrupt
    /// The user asked for a failed or expired request to run again.
    case retry
}

/// The lifecycle as a pure value: an event applied to a state gives the next state or a refusal.
/// No I/O; the ledger applies the same rules in SQL and tests pin them edge by edge.
public struct RequestLifecycle: Sendable, Equatable {
    public enum Transition: Sendable, Equatable {
        case moveTo(RequestState)
        /// The event makes no sense in this state; nothing changes.
        case refuse(reason: String)
    }

    public var maxAttempts: Int

    public init(maxAttempts: Int) {
        self.maxAttempts = max(1, maxAttempts)
    }

    /// The next state for `event`, given the current state and the attempts already started
    /// (the claim that started the current attempt included).
    public func apply(_ event: RequestEvent, to state: RequestState, attempts: Int) -> Transition {
        switch (state, event) {
        case (.queued, .claim):
            return .moveTo(.running)
        case (.queued, .expire):
            return .moveTo(.expired)
        case (.queued, .cancel), (.running, .cancel):
            return .moveTo(.cancelled)
        case (.running, .succeed):
            return .moveTo(.succeeded)
        case (.running, .fail(_, let retryable)):
            return .moveTo(retryable && attempts < maxAttempts ? .queued : .failed)
        case (.running, .interrupt):
            return .moveTo(.queued)
        case (.running, .expire):
            // A request that started in time is not expired by a slow model: that is a timeout.
            return .refuse(reason: "a running request cannot expire")
        case (.failed, .retry), (.expired, .retry), (.cancelled, .retry):
            return .moveTo(.queued)
        case (_, .retry):
            return .refuse(reason: "only failed, expired or cancelled requests can be retried; this one is \(state.rawValue)")
        case (_, .cancel):
            return .refuse(reason: "the request already finished as \(state.rawValue)")
        default:
            return .refuse(reason: "\(event) does not apply to a \(state.rawValue) request")
        }
    }
}
