import Glibc

/// An inotify descriptor: adds and removes watches and reads events. Not thread-safe; its owner
/// (`InotifyIntakeSession`) confines it to one serial queue.
final class InotifyWatcher {
    /// The non-blocking, close-on-exec inotify descriptor.
    let descriptor: Int32
    private(set) var isClosed = false
    /// Large enough for thousands of events per `read` (each is 16 bytes plus its name).
    private let buffer: UnsafeMutableRawBufferPointer

    /// Opens an inotify instance (`inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`).
    init(bufferSize: Int = 256 * 1024) throws {
        descriptor = try SystemCall.call("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        buffer = .allocate(byteCount: bufferSize, alignment: 8)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    /// Watches the folder at `path`; returns its watch descriptor (the same one again for a
    /// folder already watched, e.g. after a rename).
    func addWatch(_ path: String, mask: UInt32) throws -> Int32 {
        try SystemCall.call("inotify_add_watch", path: path) { inotify_add_watch(descriptor, path, mask) }
    }

    /// Stops watching; the kernel then sends `IN_IGNORED`. An already removed watch is fine.
    func removeWatch(_ watch: Int32) {
        _ = try? SystemCall.call("inotify_rm_watch") { inotify_rm_watch(descriptor, watch) }
    }

    /// Reads the events that are ready: `[]` when none are (the descriptor is non-blocking).
    func read() throws -> [InotifyEvent] {
        let count = try SystemCall.nonBlocking("read") { Glibc.read(descriptor, buffer.baseAddress, buffer.count) }
        guard let count, count > 0 else { return [] }
        return InotifyEvent.parse(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
    }

    /// Closes the descriptor (once). With a dispatch source, call this from its cancel handler.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        try? SystemCall.close(descriptor)
    }
}
