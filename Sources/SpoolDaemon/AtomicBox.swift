import Synchronization

/// A shareable atomic counter (an `Atomic` cannot be captured by escaping closures itself).
final class AtomicCounter: Sendable {
    private let atomic = Atomic<Int64>(0)

    func load() -> Int64 { atomic.load(ordering: .relaxed) }
    func store(_ value: Int64) { atomic.store(value, ordering: .relaxed) }
}

/// A shareable atomic flag.
final class AtomicFlag: Sendable {
    private let atomic = Atomic<Bool>(false)

    func load() -> Bool { atomic.load(ordering: .relaxed) }
    func set() { atomic.store(true, ordering: .relaxed) }
}
