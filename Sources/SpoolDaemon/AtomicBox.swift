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

/// A weak reference that can be set after it is captured: lets a component made in an
/// initializer call back into the object being initialized without keeping it alive.
final class WeakReference<Object: AnyObject & Sendable>: Sendable {
    private struct Holder: Sendable { weak var object: Object? }
    private let holder = Mutex(Holder())

    init() {}

    var value: Object? {
        get { holder.withLock { $0.object } }
        set { holder.withLock { $0.object = newValue } }
    }
}
