import Foundation
import Glibc
import SpoolTestSupport
import Testing

/// A TCP connection to 127.0.0.1:`port`, with `option` (`SO_RCVTIMEO`, `SO_SNDTIMEO`, which
/// bounds the connect too) set to `timeout`; nil when it is refused or not made in time.
func connectLoopback(port: Int, option: Int32, timeout: timeval) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var timeout = timeout
    setsockopt(fd, SOL_SOCKET, option, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A plain HTTP/1.1 exchange over a loopback socket: the status and the body, or nil when the
/// connection is refused. Bounded by a 5-second receive timeout.
func rawHTTP(
    port: Int, _ method: String, _ path: String, body: String = "", headers: [String: String] = [:]
) -> (status: Int, body: String)? {
    guard let fd = connectLoopback(port: port, option: SO_RCVTIMEO, timeout: timeval(tv_sec: 5, tv_usec: 0)) else { return nil }
    defer { close(fd) }
    var fields = ["Content-Type": "application/octet-stream"]
    fields.merge(headers) { $1 }
    let request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var response = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let statusLine = text.split(separator: "\r\n").first, let code = statusLine.split(separator: " ").dropFirst().first,
          let status = Int(code) else { return nil }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

/// A loopback port for a daemon or peer this test starts, given to no other test of the run.
func freePort() throws -> Int {
    try TestPorts.reserve()
}

extension IntegrationTests {
    @Suite(.serialized) struct HTTPShutdown {
        @Test("while a stopping daemon lets its running request finish, the API answers 503 in SageMaker's JSON instead of refusing connections",
              .timeLimit(.minutes(2)))
        func stoppingDaemonAnswers503() async throws {
            let root = try SpoolRoot(config: config(model: "sleep"))
            let port = try freePort()
            let daemon = try root.serve(["--listen", "127.0.0.1:\(port)", "--grace", "20"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            try Files.write(root.incoming + "/job.txt", "3")
            _ = try await root.waitForState("running")
            daemon.send(SIGTERM)
            try await root.waitUntil("the API to say it is stopping") { rawHTTP(port: port, "GET", "/ping")?.status == 503 }
            let ping = try #require(rawHTTP(port: port, "GET", "/ping"), "the connection is refused while the request runs")
            #expect(ping.status == 503 && ping.body.contains("ServiceUnavailable"), "\(ping)")
            let invoke = try #require(rawHTTP(port: port, "POST", "/endpoints/default/async-invocations", body: "x"))
            #expect(invoke.status == 503 && invoke.body.contains("ServiceUnavailable"), "\(invoke)")
            #expect(try await daemon.waitForExit() == 0)
            #expect(Files.text(root.output("job.txt"))?.hasPrefix("3") == true, "the running request finished")
        }

        @Test("unknown paths and methods, and requests that are not HTTP at all, get SageMaker's JSON error, not an empty body",
              .timeLimit(.minutes(2)))
        func unknownPathsAnswerJSON() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            let port = try freePort()
            _ = try root.serve(["--listen", "127.0.0.1:\(port)"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            for (method, path) in [
                ("GET", "/endpoints/nowhere"), ("GET", "/requests"), ("DELETE", "/ping"), ("GET", "/endpoints/default/async-invocations"),
                ("GARBAGE\u{1}", "/"),
            ] {
                let answer = try #require(rawHTTP(port: port, method, path))
                #expect((400..<500).contains(answer.status), "\(method) \(path): \(answer)")
                let json = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
                #expect(json?["__type"] as? String != nil && json?["message"] as? String != nil, "\(method) \(path): \(answer.body)")
            }
            // Every other path is the S3 API, which answers in S3's XML.
            let s3 = try #require(rawHTTP(port: port, "GET", "/nowhere"))
            #expect(s3.status == 404 && s3.body.contains("<Code>NoSuchBucket</Code>"), "\(s3)")
        }
    }
}

/// Opens a loopback connection and sends the start of a request that never ends; nil when the
/// connection is not established within 200 ms (the server's accept queue is full).
func halfSentRequest(port: Int) -> Int32? {
    guard let fd = connectLoopback(port: port, option: SO_SNDTIMEO, timeout: timeval(tv_sec: 0, tv_usec: 200_000)) else { return nil }
    let start = "POST /endpoints/default/async-invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc"
    guard start.withCString({ send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }) > 0 else {
        close(fd)
        return nil
    }
    return fd
}

extension IntegrationTests {
    @Suite(.serialized) struct HTTPLimits {
        @Test("a thousand half-sent requests under a 1,024-descriptor limit: dropped files still succeed, and /ping answers again",
              .timeLimit(.minutes(3)))
        func halfSentRequestsDoNotStarveTheDaemon() async throws {
            let root = try SpoolRoot(config: config(model: "echo") + "\n[http]\nidle_timeout_seconds = 2\n")
            let port = try freePort()
            let daemon = try root.serve(launcher: ["/usr/bin/prlimit", "--nofile=1024:1024", "--"], ["--listen", "127.0.0.1:\(port)"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            try await root.warmUp()
            var open: [Int32] = []
            defer { open.forEach { close($0) } }
            for _ in 0..<1000 {
                if let fd = halfSentRequest(port: port) { open.append(fd) }
            }
            #expect(open.count > 300, "most connections were established (\(open.count))")
            // The core path keeps its descriptors
            let names = (0..<50).map { "after-\($0).txt" }
            for name in names { try Files.write(root.incoming + "/" + name, name) }
            try await root.waitUntil("every dropped file's output", timeout: .seconds(60)) {
                names.allSatisfy { Files.exists(root.output($0)) }
            }
            #expect(names.allSatisfy { Files.text(root.output($0)) == $0 })
            #expect(!Files.exists(root.errors) || Files.files(under: root.errors).isEmpty, "no request failed")
            // Idle connections are closed, so the API answers again
            try await root.waitUntil("/ping answering", timeout: .seconds(60)) { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            #expect(daemon.isRunning)
        }

        @Test("a client that trickles its request head a byte at a time is cut off after idle_timeout_seconds; a slow answer is not",
              .timeLimit(.minutes(1)))
        func tricklingRequestHeadIsCutOff() async throws {
            let root = try SpoolRoot(config: config(model: "echo") + "\n[http]\nidle_timeout_seconds = 2\n")
            let port = try freePort()
            _ = try root.serve(["--listen", "127.0.0.1:\(port)"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            let fd = try #require(connectLoopback(port: port, option: SO_SNDTIMEO, timeout: timeval(tv_sec: 1, tv_usec: 0)))
            defer { close(fd) }
            let opened = ContinuousClock.now
            // One byte every 300 ms: never idle for 2 s, never a whole head.
            let head = Array("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: \(String(repeating: "a", count: 200))".utf8)
            var sent = 0
            var closedAfter: Duration?
            for byte in head {
                if send(fd, [byte], 1, Int32(MSG_NOSIGNAL)) != 1 {
                    closedAfter = ContinuousClock.now - opened
                    break
                }
                sent += 1
                var probe: UInt8 = 0
                if recv(fd, &probe, 1, Int32(MSG_DONTWAIT)) == 0 {
                    closedAfter = ContinuousClock.now - opened
                    break
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            let after = try #require(closedAfter, "the connection was still open after \(sent) bytes")
            #expect(after >= .seconds(1.9) && after < .seconds(6), "closed after \(after)")
            // A request whose head is whole may take longer: its body trickles for 3 s, and it is answered.
            let slow = try #require(connectLoopback(port: port, option: SO_RCVTIMEO, timeout: timeval(tv_sec: 10, tv_usec: 0)))
            defer { close(slow) }
            let start = "POST /endpoints/default/async-invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                + "Content-Type: text/plain\r\nContent-Length: 10\r\n\r\n"
            #expect(start.withCString { send(slow, $0, strlen($0), Int32(MSG_NOSIGNAL)) } == start.utf8.count)
            for byte in Array("0123456789".utf8) {
                try await Task.sleep(for: .milliseconds(300))
                #expect(send(slow, [byte], 1, Int32(MSG_NOSIGNAL)) == 1)
            }
            var answer = [UInt8](repeating: 0, count: 64)
            let count = recv(slow, &answer, answer.count, 0)
            #expect(String(decoding: answer.prefix(max(0, count)), as: UTF8.self).hasPrefix("HTTP/1.1 202"), "answered")
        }
    }
}
