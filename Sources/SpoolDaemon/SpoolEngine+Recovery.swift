import Foundation
import Logging
import SpoolCore
import SpoolExecutors
import SpoolStore
import SpoolSystem
#if canImport(Glibc)
import Glibc
#endif

extension SpoolEngine {
    /// How long a finished request's publication is left to the process that finished it.
    public static let publicationSettle: TimeInterval = 5

    /// Repairs what a crash of any process sharing this root left behind. Runs before the services
    /// start and then periodically; each step is safe while other processes work.
    ///
    /// 0. Models a dead owner left running (its command processes, its model servers) are killed.
    /// 1. Requests left `running` by a dead owner go back to the queue without using an attempt.
    /// 2. Claims a dead process made but never recorded (it died between the rename and the ledger
    ///    insert) are recorded now: the claim folder keeps the payload's relative path.
    /// 3. Copies of submitted payloads a dead process had not claimed yet are removed.
    /// 4. Finished requests whose marker, payload removal or event was not done are published.
    public func recover(settleSeconds: TimeInterval = publicationSettle) async {
        let isAlive = await liveness()
        stopLeftoverModels(isAlive: isAlive)
        do {
            for dead in try await ledger.runningOwners() where dead != owner && !isAlive(dead) {
                // With leases, the rescue checks the lapse again in its own transaction: an owner
                // that renewed meanwhile keeps its requests.
                let count: Int? = if let leasing { try await leasing.rescue(owner: dead) } else { try await ledger.requeue(owner: dead) }
                guard let count else { continue }
                logger.notice("requeued requests of a stopped process", metadata: ["spool.owner": "\(dead)", "spool.count": "\(count)"])
                config.endpoints.forEach { wake($0.name) }
            }
        } catch {
            logger.error("could not rescue running requests", metadata: ["spool.error": "\(error)"])
        }
        await recordOrphanedClaims(isAlive: isAlive)
        admissions.removeStaleSubmissions(isAlive: isAlive)
        if publishesOwnResults {
            // Another daemon or drain on the root may be publishing what it has just finished (the
            // ledger no longer says who finished a request): its results are left to it for the
            // usual settle time, whatever the caller asked, or both would log their events.
            let others = DaemonStatus.othersRunning(layout: layout, except: owner)
            let settle = others ? max(settleSeconds, Self.publicationSettle) : settleSeconds
            await publishUnnotified(settleSeconds: settle)
        }
        publisher.trash.emptyIfDue()
    }

    /// Kills the models (command processes, model servers) that dead owners left running, so
    /// they do not run beside the attempts that retry their requests. Only this host's: another
    /// host's processes are not ours to signal.
    func stopLeftoverModels(isAlive: (String) -> Bool) {
        let directory = layout.path(SpoolLayout.groupsDirectory)
        guard let owners = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let local = OwnerLock.hostName + "-"
        for dead in owners where dead != owner && (leasing == nil || dead.hasPrefix(local)) && !isAlive(dead) {
            let killed = ProcessGroupRecord(directory: "\(directory)/\(dead)").killLeftovers()
            if killed > 0 {
                logger.notice("stopped models left running by a stopped process", metadata: ["spool.owner": "\(dead)", "spool.count": "\(killed)"])
            }
        }
    }

    func recordOrphanedClaims(isAlive: (String) -> Bool) async {
        var alive: [String: Bool] = [owner: true]
        for endpoint in config.endpoints {
            let tokens = claimer.claimTokens(endpoint: endpoint.name).filter { token in
                guard let claimOwner = PayloadClaimer.owner(ofToken: token) else { return true }
                if let known = alive[claimOwner] { return !known }
                let living = isAlive(claimOwner)
                alive[claimOwner] = living
                return !living
            }
            guard !tokens.isEmpty else { continue }
            do {
                let recorded = try await ledger.recordedClaimTokens(among: tokens)
                for token in tokens where !recorded.contains(token) {
                    guard let claimed = claimer.recover(endpoint: endpoint.name, token: token) else { continue }
                    logger.notice("recording a claim left by a stopped process", metadata: ["spool.input": "\(claimed.relativePath)"])
                    await record(claimed, endpoint: endpoint, source: .drop, metadata: nil)
                }
            } catch {
                logger.error("could not check claims", metadata: ["spool.error": "\(error)"])
            }
        }
    }

    /// Publishes finished requests not yet notified that finished at least `settleSeconds` ago
    /// (younger ones are still being published by the process that finished them).
    func publishUnnotified(settleSeconds: TimeInterval) async {
        do {
            let cutoff = clock.now().addingTimeInterval(-settleSeconds)
            let pending = try await ledger.unnotified(limit: 10_000).filter { ($0.finishedAt ?? .distantPast) <= cutoff }
            guard !pending.isEmpty else { return }
            let logged = publisher.recentlyLoggedIDs()
            for request in pending {
                await publisher.publish(request, eventAlreadyLogged: logged.contains(request.id))
            }
        } catch {
            logger.error("could not publish finished requests", metadata: ["spool.error": "\(error)"])
        }
    }
}

extension SpoolEngine {
    /// How long the publisher leaves a succeeded request's output to its finisher, which renames
    /// it right after the ledger says succeeded; after that the finisher is taken for dead and
    /// the publisher renames the output itself.
    static let placementGrace: TimeInterval = 10

    /// The publisher's round (leasing ledgers): publishes every finished request not yet
    /// published, oldest first — but a success only once its output is in place.
    /// - Parameter holding: false once the publisher role may have passed to another process:
    ///   the round stops there.
    public func publishFinished(while holding: @Sendable () -> Bool = { true }) async {
        do {
            let pending = try await ledger.unnotified(limit: 1000)
            guard !pending.isEmpty else { return }
            let partialFolder = layout.path(SpoolLayout.partialDirectory)
            let partials = ((try? FileManager.default.contentsOfDirectory(atPath: partialFolder)) ?? []).filter { $0.hasSuffix(".out") }
            let logged = publisher.recentlyLoggedIDs()
            let cutoff = clock.now().addingTimeInterval(-Self.placementGrace)
            for request in pending {
                guard holding() else { return }
                let left = partials.filter { $0.hasPrefix(request.claimToken + ".") }
                if request.state == .succeeded, let finisher = left.first(where: { $0.hasSuffix(Self.partialSuffix(request)) }) {
                    // The finishing attempt's output is not in place yet: its finisher renames it
                    // any moment, or died before it could.
                    guard (request.finishedAt ?? .distantPast) < cutoff else { continue }
                    placeLeftOutput(request, from: "\(partialFolder)/\(finisher)")
                }
                // Attempts taken over leave theirs behind when they die before dropping it.
                for stale in left where !stale.hasSuffix(Self.partialSuffix(request)) || request.state != .succeeded {
                    _ = unlink("\(partialFolder)/\(stale)")
                }
                await publisher.publish(request, eventAlreadyLogged: logged.contains(request.id))
            }
        } catch {
            logger.error("could not publish finished requests", metadata: ["spool.error": "\(error)"])
        }
    }

    /// Renames the output a dead finisher left for `request` into place.
    private func placeLeftOutput(_ request: InferenceRequest, from partial: String) {
        let destination = layout.path(request.outputLocation)
        do {
            try SystemCalls.makeDirectories((destination as NSString).deletingLastPathComponent)
            try SystemCalls.rename(partial, destination)
            try SystemCalls.fsyncDirectory((destination as NSString).deletingLastPathComponent)
            try SystemCalls.unlinkIfPresent(layout.path(request.failureLocation))
            logger.notice("put in place the output of a request whose finisher stopped", metadata: ["spool.request.id": "\(request.id)"])
        } catch {
            logger.error("could not put a left output in place", metadata: ["spool.request.id": "\(request.id)", "spool.error": "\(error)"])
        }
    }
}
