/// The Prometheus text exposition served at `GET /metrics`.
enum MetricsText {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
