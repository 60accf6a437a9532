import Glibc
import SpoolCore
import SpoolSystem

/// Turning inotify events into candidates and keeping the watch table right. Runs on `queue`.
extension InotifyIntakeSession {
    /// The dispatch source's handler: drains the descriptor (in bounded rounds, so `stop` is not
    /// starved during a burst) and rescans once if the kernel queue overflowed.
    func readEvents() {
        var overflowed = false
        for _ in 0..<32 {
            let events: [InotifyEvent]
            do {
                events = try watcher.read()
            } catch let error as SpoolIntakeError {
                onError(error)
                break
            } catch {
                break
            }
            if events.isEmpty { break }
            for event in events {
                if event.isOverflow { overflowed = true } else { handle(event) }
            }
        }
        if overflowed {
            rescans += 1
            rescanAll()
        }
    }

    func handle(_ event: InotifyEvent) {
        if event.has(IN_IGNORED) { return forget(event.watch) }
        guard let watch = watches[event.watch] else { return }
        if event.has(IN_MOVE_SELF) { return revalidate(event.watch) }
        // IN_DELETE_SELF: the kernel drops the watch and sends IN_IGNORED next.
        guard let name = event.name else {
            // A name that is not UTF-8: the scan gives it one that is, and takes it then.
            if event.has(IN_CLOSE_WRITE) || event.has(IN_MOVED_TO) || event.has(IN_CREATE) {
                scan(folder: watch.folder, under: watch.relative, rewatch: event.isDirectory)
            }
            return
        }
        guard !name.isEmpty else { return }
        let relative = FileTree.join(watch.relative, name)
        if event.isDirectory {
            // A new folder: watch it (and everything in it), then scan it, so that a file made in
            // it before the watch existed is found by the scan and any later one by an event.
            guard event.has(IN_CREATE) || event.has(IN_MOVED_TO), !DropRules.isIgnoredDirectory(name: name) else { return }
            scan(folder: watch.folder, under: relative, rewatch: true)
            return
        }
        guard !DropRules.isIgnored(name: name) else { return }
        if event.has(IN_CLOSE_WRITE) || event.has(IN_MOVED_TO) {
            yield(watch.folder, relative)
        } else if event.has(IN_CREATE) {
            // Only regular files are written after creation; a symbolic link, FIFO or device is
            // complete when it appears and is never "closed after writing".
            let path = folders[watch.folder].path(relative)
            if let info = try? SystemCall.lstat(path), !info.isRegularFile, !info.isDirectory {
                yield(watch.folder, relative)
            }
        }
    }

    /// `IN_IGNORED`: the watch is gone. If it was a drop folder's own, recreate the drop folder.
    func forget(_ descriptor: Int32) {
        guard let watch = watches.removeValue(forKey: descriptor) else { return }
        if watch.relative.isEmpty { reestablish(folder: watch.folder) }
    }

    /// `IN_MOVE_SELF`: a watched folder was renamed. Renamed inside the tree, it was already
    /// re-watched under its new name (the kernel reports `IN_MOVED_TO` first, and re-adding an
    /// inode returns its existing watch); moved away, its watch and those below it are dropped.
    func revalidate(_ descriptor: Int32) {
        guard let moved = watches[descriptor], !isInPlace(moved) else { return }
        for (other, watch) in watches where watch.folder == moved.folder && !isInPlace(watch)
            && (moved.relative.isEmpty || watch.relative == moved.relative || watch.relative.hasPrefix(moved.relative + "/")) {
            watches[other] = nil
            watcher.removeWatch(other)
        }
        if moved.relative.isEmpty { reestablish(folder: moved.folder) }
    }

    /// Whether the folder a watch stands for is still at its path.
    func isInPlace(_ watch: Watch) -> Bool {
        guard let now = identity(folders[watch.folder].path(watch.relative), follow: watch.relative.isEmpty) else {
            return false
        }
        return now.device == watch.device && now.inode == watch.inode
    }

    /// A drop folder vanished (deleted or moved away): make a new one if its parent still exists,
    /// watch it and scan it. Never fatal; failures are reported.
    func reestablish(folder: Int) {
        guard state == .running else { return }
        let path = folders[folder].directory
        do {
            try SystemCall.mkdir(path)
        } catch let error as SpoolIntakeError {
            return onError(error)
        } catch {
            return
        }
        scan(folder: folder, under: "", rewatch: true)
    }

    /// After `IN_Q_OVERFLOW` events were lost: re-watch every folder (adding any missing watch),
    /// yield everything present, and drop watches of folders no longer in the tree.
    func rescanAll() {
        var seen = Set<Int32>()
        for index in folders.indices {
            if identity(folders[index].directory, follow: true) == nil {
                _ = try? SystemCall.mkdir(folders[index].directory)
            }
            seen.formUnion(scan(folder: index, under: "", rewatch: true))
        }
        for descriptor in watches.keys where !seen.contains(descriptor) {
            watches[descriptor] = nil
            watcher.removeWatch(descriptor)
        }
    }
}
