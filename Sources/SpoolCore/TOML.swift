import Foundation

/// A TOML value, as the configuration reader needs it.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .bool: "boolean"
        case .array: "array"
        case .table: "table"
        }
    }
}

/// A TOML table that remembers the order its keys were written in.
public struct TOMLTable: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TOMLValue] = [:]

    public init() {}

    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }
}

/// A syntax error with the line it was found on.
public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// A reader for the TOML that configuration files use: tables, dotted keys, basic and literal
/// strings (single- and multi-line), integers, floats, booleans, arrays and inline tables.
/// Array-of-tables and dates are refused with a clear error, and so is what TOML forbids:
/// malformed numbers, extending an inline table, nesting past `maxDepth`. (A small reader
/// because TOMLKit compiles a large C++ header four times: clean builds stay short.)
public struct TOMLParser {
    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    /// Arrays and inline tables open around the value being read.
    private var depth = 0
    /// The most arrays and inline tables one value may nest (a bound, so that a hostile file
    /// cannot exhaust the stack).
    static let maxDepth = 32
    /// Paths of tables written inline (`a = { … }`): TOML forbids extending them later.
    private var inlineTables: Set<[String]> = []

    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(bytes: Array(text.utf8))
        return try parser.document()
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func fail(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    private mutating func advance() {
        if current == UInt8(ascii: "\n") { line += 1 }
        index += 1
    }

    private mutating func skipSpaces() {
        while let c = current, c == 0x20 || c == 0x09 { advance() }
    }

    private mutating func skipComment() {
        if current == UInt8(ascii: "#") {
            while let c = current, c != UInt8(ascii: "\n") { advance() }
        }
    }

    /// Spaces, newlines and comments (inside arrays).
    private mutating func skipBlank() {
        while true {
            skipSpaces()
            skipComment()
            if let c = current, c == 0x0A || c == 0x0D { advance() } else { return }
        }
    }

    private mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        skipComment()
        if current == 0x0D { advance() }
        guard current == nil || current == 0x0A else {
            throw fail("unexpected text after a value")
        }
        if current != nil { advance() }
    }

    private mutating func document() throws(TOMLError) -> TOMLTable {
        var root = TOMLTable()
        var currentPath: [String] = []
        var definedTables: Set<[String]> = []
        while current != nil {
            skipBlank()
            guard let c = current else { break }
            if c == UInt8(ascii: "[") {
                advance()
                if current == UInt8(ascii: "[") { throw fail("arrays of tables ([[...]]) are not supported") }
                skipSpaces()
                let path = try key()
                skipSpaces()
                guard current == UInt8(ascii: "]") else { throw fail("expected ] after the table name") }
                advance()
                try endOfLine()
                guard definedTables.insert(path).inserted else {
                    throw fail("table [\(path.joined(separator: "."))] is defined twice")
                }
                try checkNotInline(path, including: true)
                try Self.ensureTable(at: path, in: &root, line: line)
                currentPath = path
            } else {
                let path = try key()
                skipSpaces()
                guard current == UInt8(ascii: "=") else { throw fail("expected = after key \(path.joined(separator: "."))") }
                advance()
                skipSpaces()
                let v = try value()
                try endOfLine()
                let full = currentPath + path
                try checkNotInline(full, including: false)
                try Self.insert(v, at: full, in: &root, line: line - 1)
                if case .table = v { inlineTables.insert(full) }
            }
        }
        return root
    }

    /// Refuses a path that reaches into a table written inline (`including` the path itself).
    private func checkNotInline(_ path: [String], including: Bool) throws(TOMLError) {
        let last = including ? path.count : path.count - 1
        guard last >= 1 else { return }
        for length in 1...last where inlineTables.contains(Array(path.prefix(length))) {
            throw fail("inline table \(path.prefix(length).joined(separator: ".")) cannot be extended")
        }
    }

    private static func ensureTable(at path: [String], in table: inout TOMLTable, line: Int) throws(TOMLError) {
        guard let first = path.first else { return }
        var child: TOMLTable
        switch table[first] {
        case nil: child = TOMLTable()
        case .table(let t): child = t
        case let other?: throw TOMLError(line: line, message: "key \(first) is a \(other.typeName), not a table")
        }
        try ensureTable(at: Array(path.dropFirst()), in: &child, line: line)
        table[first] = .table(child)
    }

    private static func insert(_ value: TOMLValue, at path: [String], in table: inout TOMLTable, line: Int) throws(TOMLError) {
        let first = path[0]
        if path.count == 1 {
            guard table[first] == nil else { throw TOMLError(line: line, message: "key \(first) is defined twice") }
            table[first] = value
            return
        }
        var child: TOMLTable
        switch table[first] {
        case nil: child = TOMLTable()
        case .table(let t): child = t
        case let other?: throw TOMLError(line: line, message: "key \(first) is a \(other.typeName), not a table")
        }
        try insert(value, at: Array(path.dropFirst()), in: &child, line: line)
        table[first] = .table(child)
    }

    /// A dotted key: bare, "basic" or 'literal' parts.
    private mutating func key() throws(TOMLError) -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = current else { throw fail("expected a key") }
            if c == UInt8(ascii: "\"") {
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                parts.append(try literalString())
            } else {
                let start = index
                while let c = current, Self.isBareKey(c) { advance() }
                guard index > start else { throw fail("expected a key, found '\(Character(UnicodeScalar(c)))'") }
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            skipSpaces()
            if current == UInt8(ascii: ".") { advance() } else { return parts }
        }
    }

    private static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
    }

    private mutating func value() throws(TOMLError) -> TOMLValue {
        guard let c = current else { throw fail("expected a value") }
        switch c {
        case UInt8(ascii: "\""): return .string(try basicString())
        case UInt8(ascii: "'"): return .string(try literalString())
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "{"): return try inlineTable()
        default: return try scalar()
        }
    }

    /// Enters one more array or inline table, refusing past `maxDepth`.
    private mutating func nest() throws(TOMLError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("values nested more than \(Self.maxDepth) levels deep") }
    }

    private mutating func array() throws(TOMLError) -> TOMLValue {
        try nest()
        defer { depth -= 1 }
        advance()
        var items: [TOMLValue] = []
        while true {
            skipBlank()
            if current == UInt8(ascii: "]") { advance(); return .array(items) }
            items.append(try value())
            skipBlank()
            if current == UInt8(ascii: ",") { advance(); continue }
            if current == UInt8(ascii: "]") { advance(); return .array(items) }
            throw fail("expected , or ] in an array")
        }
    }

    private mutating func inlineTable() throws(TOMLError) -> TOMLValue {
        try nest()
        defer { depth -= 1 }
        advance()
        var table = TOMLTable()
        skipSpaces()
        if current == UInt8(ascii: "}") { advance(); return .table(table) }
        while true {
            let path = try key()
            skipSpaces()
            guard current == UInt8(ascii: "=") else { throw fail("expected = in an inline table") }
            advance()
            skipSpaces()
            let v = try value()
            try Self.insert(v, at: path, in: &table, line: line)
            skipSpaces()
            if current == UInt8(ascii: ",") { advance(); skipSpaces(); continue }
            if current == UInt8(ascii: "}") { advance(); return .table(table) }
            throw fail("expected , or } in an inline table")
        }
    }

    private mutating func scalar() throws(TOMLError) -> TOMLValue {
        let start = index
        while let c = current, c != 0x20, c != 0x09, c != 0x0A, c != 0x0D, c != UInt8(ascii: ","),
              c != UInt8(ascii: "]"), c != UInt8(ascii: "}"), c != UInt8(ascii: "#") {
            advance()
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if let problem = Self.numberProblem(text) { throw fail("cannot read number '\(text)': \(problem)") }
        let digits = text.replacingOccurrences(of: "_", with: "")
        if let i = Int64(digits) { return .integer(i) }
        if digits.hasPrefix("0x"), let i = Int64(digits.dropFirst(2), radix: 16) { return .integer(i) }
        if digits.hasPrefix("0o"), let i = Int64(digits.dropFirst(2), radix: 8) { return .integer(i) }
        if digits.hasPrefix("0b"), let i = Int64(digits.dropFirst(2), radix: 2) { return .integer(i) }
        if digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let d = Double(digits) { return .float(d) }
        if text.isEmpty { throw fail("expected a value") }
        throw fail("cannot read value '\(text)' (strings need quotes; dates are not supported)")
    }

    /// Why `text`, which starts like a number, is not one TOML allows; nil when it is fine or
    /// not a number at all (the caller reports that). TOML: an underscore stands between two
    /// digits; a decimal integer part has no leading zero; prefixed (0x, 0o, 0b) integers have
    /// no sign.
    static func numberProblem(_ text: String) -> String? {
        let chars = Array(text)
        guard let first = chars.first, first.isNumber || first == "+" || first == "-" || first == "_" else { return nil }
        let isHex = text.hasPrefix("0x")
        func isDigit(_ c: Character) -> Bool { isHex ? c.isHexDigit : c.isNumber }
        for (i, c) in chars.enumerated() where c == "_" {
            guard i > 0, i < chars.count - 1, isDigit(chars[i - 1]), isDigit(chars[i + 1]) else {
                return "an underscore must stand between two digits"
            }
        }
        if text.hasPrefix("0x") || text.hasPrefix("0o") || text.hasPrefix("0b") { return nil }
        let unsigned = first == "+" || first == "-" ? chars.dropFirst() : chars[...]
        let integerPart = unsigned.prefix { $0.isNumber || $0 == "_" }
        if integerPart.count > 1, integerPart.first == "0" { return "leading zeros are not allowed" }
        return nil
    }

    private mutating func literalString() throws(TOMLError) -> String {
        if starts(with: "'''") {
            index += 3
            if current == 0x0A { advance() }
            let start = index
            while !starts(with: "'''") {
                guard current != nil else { throw fail("unterminated multi-line string") }
                advance()
            }
            let s = String(decoding: bytes[start..<index], as: UTF8.self)
            index += 3
            return s
        }
        advance()
        let start = index
        while let c = current, c != UInt8(ascii: "'") {
            if c == 0x0A { throw fail("unterminated string") }
            advance()
        }
        guard current != nil else { throw fail("unterminated string") }
        let s = String(decoding: bytes[start..<index], as: UTF8.self)
        advance()
        return s
    }

    private func starts(with marker: String) -> Bool {
        let m = Array(marker.utf8)
        return index + m.count <= bytes.count && Array(bytes[index..<index + m.count]) == m
    }

    private mutating func basicString() throws(TOMLError) -> String {
        let multiline = starts(with: "\"\"\"")
        if multiline {
            index += 3
            if current == 0x0A { advance() }
        } else {
            advance()
        }
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw fail("unterminated string") }
            if multiline {
                if starts(with: "\"\"\"") { index += 3; break }
            } else {
                if c == UInt8(ascii: "\"") { advance(); break }
                if c == 0x0A { throw fail("unterminated string") }
            }
            if c == UInt8(ascii: "\\") {
                advance()
                guard let e = current else { throw fail("unterminated escape") }
                advance()
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard index + n <= bytes.count,
                          let code = UInt32(String(decoding: bytes[index..<index + n], as: UTF8.self), radix: 16),
                          let scalar = UnicodeScalar(code) else { throw fail("bad unicode escape") }
                    index += n
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                case 0x0A where multiline:
                    // A line-ending backslash trims the newline and following whitespace.
                    while let w = current, w == 0x20 || w == 0x09 || w == 0x0A || w == 0x0D { advance() }
                default:
                    throw fail("unknown escape \\\(Character(UnicodeScalar(e)))")
                }
                continue
            }
            out.append(c)
            advance()
        }
        return String(decoding: out, as: UTF8.self)
    }
}
