import Foundation
import Testing
@testable import SpoolCore

/// What the small TOML reader accepts and refuses, beyond the basics in `TOMLParserTests`.
@Suite struct TOMLParserStrictnessTests {
    @Test(arguments: ["n = 1__0", "n = _1", "n = 1_", "n = 03", "n = -01", "n = 00", "n = 0x_1", "n = 01.5"])
    func refusesNumbersTOMLForbids(text: String) {
        #expect(throws: TOMLError.self) { try TOMLParser.parse(text + "\n") }
    }

    @Test(arguments: [
        ("n = 1_000", TOMLValue.integer(1000)), ("n = 0", .integer(0)), ("n = -0", .integer(0)), ("n = +7", .integer(7)),
        ("n = 0xdead_beef", .integer(0xdead_beef)), ("n = 0o17", .integer(15)), ("n = 0b1_0", .integer(2)),
        ("n = 0.5", .float(0.5)), ("n = 1_0.2_5", .float(10.25)), ("n = 1e3", .float(1000)), ("n = -2.5e-1", .float(-0.25)),
    ])
    func readsNumbersTOMLAllows(text: String, value: TOMLValue) throws {
        #expect(try TOMLParser.parse(text + "\n")["n"] == value)
    }

    @Test(arguments: [
        "a = { x = 1 }\na.y = 2\n",
        "a = { x = 1 }\n[a]\ny = 2\n",
        "a = { x = { y = 1 } }\n[a.x]\nz = 2\n",
        "[t]\na = { x = 1 }\n[t.a]\n",
    ])
    func refusesExtendingAnInlineTable(text: String) {
        #expect(throws: TOMLError.self) { try TOMLParser.parse(text) }
    }

    @Test func boundsTheNestingDepth() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        do {
            _ = try TOMLParser.parse("a = \(deep)\n")
            Issue.record("100,000 nested arrays were accepted")
        } catch {
            #expect(error.message.contains("nested"))
        }
        let depth = TOMLParser.maxDepth
        let shallow = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(try TOMLParser.parse("a = \(shallow)\n")["a"] != nil)
        let tables = String(repeating: "{b = ", count: 40) + "1" + String(repeating: "}", count: 40)
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = \(tables)\n") }
    }

    @Test func readsStringsOfEveryKind() throws {
        let text = #"""
            a = "tab\there \u00e9 \"q\""
            b = 'C:\path'
            c = """
            two
            lines"""
            d = '''
            raw \n'''
            """#
        let table = try TOMLParser.parse(text)
        #expect(table["a"] == .string("tab\there é \"q\""))
        #expect(table["b"] == .string(#"C:\path"#))
        #expect(table["c"] == .string("two\nlines"))
        #expect(table["d"] == .string(#"raw \n"#))
    }

    @Test(arguments: [
        "a = \"open\n", "a = 'open\n", "a = \"\\q\"\n", "[[t]]\n", "a = 1979-05-27\n", "a = 1 2\n", "= 1\n", "a = \n",
    ])
    func refusesWhatItDoesNotRead(text: String) {
        #expect(throws: TOMLError.self) { try TOMLParser.parse(text) }
    }
}
