import Foundation

/// Ledgers store times as whole milliseconds since 1970: sortable, comparable in SQL, and the
/// same on every platform and database. Anything finer than a millisecond is rounded away. The
/// arithmetic goes through `timeIntervalSinceReferenceDate`, the value a `Date` holds, so that a
/// date with whole milliseconds reads back equal to itself.
extension Date {
    private static let referenceDateMilliseconds: Int64 = 978_307_200_000

    public var millisecondsSince1970: Int64 {
        Int64((timeIntervalSinceReferenceDate * 1000).rounded()) + Self.referenceDateMilliseconds
    }

    public init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSinceReferenceDate: Double(milliseconds - Self.referenceDateMilliseconds) / 1000)
    }
}
