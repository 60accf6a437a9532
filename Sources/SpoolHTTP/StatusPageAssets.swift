/// The status page's style and script, served by the binary (`/ui/app.css`, `/ui/app.js`):
/// nothing from a CDN, the page works offline.
enum StatusPageAssets {
    static let style = """
        :root { --fg: #1d2430; --muted: #5c6675; --line: #d9dee5; --bg: #f6f7f9; --card: #fff;
                --ok: #2f7d4f; --bad: #b3261e; --p50: #2a6fdb; --p99: #d9822b; --bar: #6b8fd6; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
        header h1 { margin: 0; font-size: 18px; } header h1 a { color: inherit; text-decoration: none; }
        header form { display: flex; gap: 6px; } header input { width: 22em; padding: 4px 6px; }
        .updated { margin-left: auto; color: var(--muted); font-size: 12px; }
        main { padding: 16px 20px; display: grid; gap: 16px; }
        section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
        h2 { margin: 0 0 10px; font-size: 16px; } h3 { font-size: 14px; }
        dl.counts { display: grid; grid-template-columns: repeat(auto-fill, minmax(110px, 1fr)); gap: 8px; margin: 0 0 10px; }
        dl.counts div { background: var(--bg); border-radius: 6px; padding: 6px 10px; }
        dt { color: var(--muted); font-size: 12px; } dd { margin: 0; font-size: 20px; font-variant-numeric: tabular-nums; }
        dd.failed { color: var(--bad); }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
        figure.chart { margin: 0; } figcaption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
        svg { width: 100%; height: 140px; background: var(--bg); border-radius: 6px; }
        svg text { font-size: 10px; fill: var(--muted); }
        svg .axis { stroke: var(--line); } svg .bars rect { fill: var(--bar); }
        svg polyline { fill: none; stroke-width: 1.5; } svg circle { stroke: none; }
        svg .p50 { stroke: var(--p50); fill: var(--p50); } svg .p99 { stroke: var(--p99); fill: var(--p99); }
        polyline.p50, polyline.p99 { fill: none; }
        span.p50 { color: var(--p50); } span.p99 { color: var(--p99); }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 500; font-size: 12px; }
        td.code { color: var(--bad); white-space: nowrap; } td.reason { max-width: 40em; }
        .input { color: var(--muted); font-size: 12px; word-break: break-all; }
        code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
        table.detail th { width: 12em; }
        pre.tail { background: #11151c; color: #e6e6e6; padding: 10px; border-radius: 6px; overflow: auto; max-height: 30em; white-space: pre-wrap; }
        .state.succeeded { color: var(--ok); } .state.failed, .state.expired, .state.cancelled { color: var(--bad); }
        .empty, .note { color: var(--muted); }
        """

    /// Refreshes the overview every 3 seconds: fetches the page again (same URL, same
    /// credentials) and swaps its `<main>` in. No framework, no inline code.
    static let script = """
        "use strict";
        (function () {
          const main = document.getElementById("main");
          if (!main || main.dataset.refresh !== "on") return;
          async function refresh() {
            try {
              const response = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
              if (response.ok) {
                const page = new DOMParser().parseFromString(await response.text(), "text/html");
                const fresh = page.getElementById("main");
                const stamp = page.querySelector(".updated");
                if (fresh) main.replaceChildren(...fresh.childNodes);
                const old = document.querySelector(".updated");
                if (stamp && old) old.replaceWith(stamp);
              }
            } catch (e) { /* the daemon may be restarting: try again later */ }
            setTimeout(refresh, 3000);
          }
          setTimeout(refresh, 3000);
        })();
        """
}
