import Foundation
import Logging
import SpoolCore
import SpoolExecutors
import SpoolIntake

extension SpoolEngine {
    /// Repairs what a crash of any process sharing this root left behind. Runs before the services
    /// start and then periodically; each step is safe while other processes work.
    ///
    /// 0. Models a dead owner left running (its command processes, its model servers) are killed.
    /// 1. Requests left `running` by a dead owner go back to the queue without using an attempt.
    /// 2. Claims a dead process made but never recorded (it died between the rename and the ledger
    ///    insert) are recorded now: the claim folder keeps the payload's relative path.
    /// 3. Copies of submitted payloads a dead process had not claimed yet are removed.
    /// 4. Finished requests whose marker, payload removal or event was not done are published.
    public func recover(settleSeconds: TimeInterval = 5) async {
        stopLeftoverModels()
        do {
            for dead in try await ledger.runningOwners() where dead != owner && !OwnerLock.isAlive(layout: layout, owner: dead) {
                let count = try await ledger.requeue(owner: dead)
                logger.notice("requeued requests of a stopped process", metadata: ["spool.owner": "\(dead)", "spool.count": "\(count)"])
                config.endpoints.forEach { wake($0.name) }
            }
        } catch {
            logger.error("could not rescue running requests", metadata: ["spool.error": "\(error)"])
        }
        await recordOrphanedClaims()
        removeStaleSubmissions()
        await publishUnnotified(settleSeconds: settleSeconds)
        publisher.trash.emptyIfDue()
    }

    /// Kills the models (command processes, model servers) that dead owners left running, so
    /// they do not run beside the attempts that retry their requests.
    func stopLeftoverModels() {
        let directory = layout.path(SpoolLayout.groupsDirectory)
        guard let owners = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for dead in owners where dead != owner && !OwnerLock.isAlive(layout: layout, owner: dead) {
            let killed = ProcessGroupRecord(directory: "\(directory)/\(dead)").killLeftovers()
            if killed > 0 {
                logger.notice("stopped models left running by a stopped process", metadata: ["spool.owner": "\(dead)", "spool.count": "\(killed)"])
            }
        }
    }

    func recordOrphanedClaims() async {
        var alive: [String: Bool] = [owner: true]
        for endpoint in config.endpoints {
            let tokens = claimer.claimTokens(endpoint: endpoint.name).filter { token in
                guard let claimOwner = PayloadClaimer.owner(ofToken: token) else { return true }
                if let known = alive[claimOwner] { return !known }
                let isAlive = OwnerLock.isAlive(layout: layout, owner: claimOwner)
                alive[claimOwner] = isAlive
                return !isAlive
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
            let cutoff = Date().addingTimeInterval(-settleSeconds)
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
