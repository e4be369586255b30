//! A run's results: the table on stdout, JSON for machines and `--compare`,
//! and an HTML report with SVG charts (maud, no JavaScript).

use std::fmt::Write as _;
use std::path::Path;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct Sample {
    pub t: f64,
    pub open: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The p99 of crowded rooms' staleness in this second (0: none).
    #[serde(default)]
    pub crowd_p99_ms: f64,
    pub deliveries: u64,
    pub moves: u64,
    pub server_cores: f64,
    pub harness_cores: f64,
    pub server_rss_mib: f64,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct Report {
    pub scenario: String,
    pub command: String,
    pub seed: u64,
    pub transport: String,
    pub server: String,
    pub posts: usize,
    pub readers: u64,
    pub hz: f64,
    pub seconds: f64,
    pub connections_opened: u64,
    pub connections_failed: u64,
    pub resumed: u64,
    pub post_answers: std::collections::BTreeMap<String, u64>,
    pub moves_sent: u64,
    pub moves_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub bytes_per_sec: f64,
    /// Event-stream frames the server wrote (its `/metrics`), a second, and
    /// a second per reader: at most one per tick each, whatever the room.
    #[serde(default)]
    pub frames_per_sec: f64,
    #[serde(default)]
    pub frames_per_reader_per_sec: f64,
    /// Snapshots the server sent to readers that fell so far behind that it
    /// dropped frames for them: their staleness is not in the figures.
    #[serde(default)]
    pub lag_snapshots: u64,
    pub staleness_ms: Percentiles,
    /// Staleness over the seconds when every reader was in: after the
    /// ramp-up, so without the cost of readers arriving. Not for `ramp`,
    /// whose steps report their own.
    #[serde(default)]
    pub held_staleness_ms: Option<Percentiles>,
    pub server_cpu_cores: f64,
    /// Cluster mode: each instance's CPU, and Redis's.
    #[serde(default)]
    pub cluster: Option<ClusterFigures>,
    pub server_peak_rss_mib: f64,
    pub server_bytes_per_reader: f64,
    pub harness_cpu_cores: f64,
    pub errors: std::collections::BTreeMap<String, u64>,
    /// In cluster mode: staleness of moves seen by readers on another instance.
    #[serde(default)]
    pub cross_instance_staleness_ms: Option<Percentiles>,
    /// Crowded rooms: from a marker's step into or out of its block until a
    /// reader's `density` shows it (see `marker.rs`). `staleness_ms` is the
    /// rooms that send every ghost.
    #[serde(default)]
    pub crowd_staleness_ms: Option<Percentiles>,
    /// The same over the seconds when every reader was in.
    #[serde(default)]
    pub held_crowd_staleness_ms: Option<Percentiles>,
    /// Crowded rooms: from a neighbour's move until a reader's `near` shows
    /// it (or a newer position), and over the seconds when all were in.
    #[serde(default)]
    pub near_staleness_ms: Option<Percentiles>,
    #[serde(default)]
    pub held_near_staleness_ms: Option<Percentiles>,
    /// With `--browser-frames`: a real Chromium's frame times, scrolling
    /// the first post once all readers were in.
    #[serde(default)]
    pub browser_frame_ms: Option<Percentiles>,
    /// From a reader starting to connect until its `hello` came.
    #[serde(default)]
    pub hello_ms: Option<Percentiles>,
    /// For `ramp`: the most readers held within the limits, and their moves/s.
    pub knee: Option<(u64, f64)>,
    pub cdf: Vec<(f64, f64)>,
    pub timeline: Vec<Sample>,
}

/// Cluster mode: where the CPU went, and what Redis sent.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ClusterFigures {
    pub instance_cores: Vec<f64>,
    /// Bytes a second each instance heard from Redis (its
    /// `ghostread_cluster_bytes_in_total`: message payloads).
    #[serde(default)]
    pub instance_bytes_in_per_sec: Vec<f64>,
    pub redis_cores: f64,
    /// Bytes a second Redis sent to all its clients (the instances, almost
    /// all of it).
    pub redis_out_bytes_per_sec: f64,
    /// The rest of the cluster's moves a second (`--elsewhere-moves`).
    pub elsewhere_moves_per_sec: f64,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    /// A histogram of microseconds, in milliseconds.
    pub fn of(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
        let q = |q: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                histogram.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: histogram.max() as f64 / 1000.0,
            count: histogram.len(),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

impl Report {
    /// What keeps this run from being clean: failed connections, errors,
    /// POSTs not answered 204, or no move seen by anyone. Empty when clean;
    /// `--expect-clean` exits with status 1 otherwise.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connections_failed > 0 {
            problems.push(format!("{} connections failed", self.connections_failed));
        }
        if !self.errors.is_empty() {
            problems.push(format!("errors {:?}", self.errors));
        }
        let refused: u64 = self
            .post_answers
            .iter()
            .filter(|(status, _)| *status != "204")
            .map(|(_, n)| n)
            .sum();
        if refused > 0 {
            problems.push(format!("{refused} POSTs not answered 204"));
        }
        let seen =
            self.staleness_ms.count + self.crowd_staleness_ms.as_ref().map_or(0, |c| c.count);
        if self.moves_sent == 0 || seen == 0 {
            problems.push("no move was sent and seen".to_string());
        }
        problems
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows: Vec<(&str, String)> = vec![
            (
                "scenario",
                format!(
                    "{} (seed {}), {} posts, {:.1} Hz, {:.0} s",
                    self.scenario, self.seed, self.posts, self.hz, self.seconds
                ),
            ),
            ("server", self.server.clone()),
            ("transport", self.transport.clone()),
            ("readers (peak open)", self.readers.to_string()),
            (
                "connections",
                format!(
                    "{} opened, {} failed, {} resumed",
                    self.connections_opened, self.connections_failed, self.resumed
                ),
            ),
            ("POST answers", format!("{:?}", self.post_answers)),
            (
                "moves",
                format!("{} sent, {:.0}/s", self.moves_sent, self.moves_per_sec),
            ),
            (
                "frames written",
                format!(
                    "{:.0}/s, {:.1} a second per reader; {} snapshots to readers behind",
                    self.frames_per_sec, self.frames_per_reader_per_sec, self.lag_snapshots
                ),
            ),
            (
                "positions delivered",
                format!(
                    "{:.0}/s, {:.0} KiB/s",
                    self.deliveries_per_sec,
                    self.bytes_per_sec / 1024.0
                ),
            ),
            (
                "staleness ms",
                if self.staleness_ms.count > 0 {
                    self.staleness_ms.line()
                } else {
                    "– (every room was crowded)".into()
                },
            ),
            ("  once all were in", line_or(&self.held_staleness_ms, "–")),
            (
                "crowd staleness ms",
                line_or(&self.crowd_staleness_ms, "– (no room was crowded)"),
            ),
            (
                "  once all were in",
                line_or(&self.held_crowd_staleness_ms, "–"),
            ),
            (
                "neighbours' moves ms",
                line_or(&self.near_staleness_ms, "– (no neighbour moved)"),
            ),
            (
                "  once all were in",
                line_or(&self.held_near_staleness_ms, "–"),
            ),
            (
                "Chromium frame ms",
                line_or(&self.browser_frame_ms, "– (no --browser-frames)"),
            ),
            ("time to hello ms", line_or(&self.hello_ms, "–")),
            (
                "server CPU",
                format!("{:.2} of a core", self.server_cpu_cores),
            ),
            (
                "server memory",
                format!(
                    "peak {:.1} MiB, {:.0} bytes per reader",
                    self.server_peak_rss_mib, self.server_bytes_per_reader
                ),
            ),
            (
                "harness CPU",
                format!("{:.2} of a core", self.harness_cpu_cores),
            ),
            (
                "errors",
                if self.errors.is_empty() {
                    "none".into()
                } else {
                    format!("{:?}", self.errors)
                },
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<22} {value}");
        }
        let per_move = self.server_cpu_cores * 1000.0 / self.moves_per_sec.max(1e-9);
        let _ = writeln!(out, "{:<22} {per_move:.3} core-ms per move", "server cost");
        if let Some(c) = &self.cluster {
            let each: Vec<String> = c
                .instance_cores
                .iter()
                .zip(
                    c.instance_bytes_in_per_sec
                        .iter()
                        .chain(std::iter::repeat(&0.0)),
                )
                .map(|(cores, bytes)| format!("{cores:.3} core, {bytes:.0} B/s in"))
                .collect();
            let _ = writeln!(
                out,
                "{:<22} instances {}; Redis {:.3} core, {:.0} bytes/s out; elsewhere {:.0} moves/s",
                "cluster",
                each.join(" / "),
                c.redis_cores,
                c.redis_out_bytes_per_sec,
                c.elsewhere_moves_per_sec
            );
        }
        if let Some(c) = &self.cross_instance_staleness_ms {
            let _ = writeln!(out, "{:<22} {}", "cross-instance ms", c.line());
        }
        if let Some((readers, moves)) = self.knee {
            let _ = writeln!(
                out,
                "{:<22} {readers} readers at {moves:.0} moves/s",
                "knee"
            );
        }
        out
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join(format!("{}.json", self.scenario));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let html = dir.join(format!("{}.html", self.scenario));
        std::fs::write(&html, self.html().into_string())?;
        // The CDF alone, for READMEs and pull requests.
        let title = format!("{}: staleness CDF", self.scenario);
        let svg = chart(
            &title,
            "ms",
            "fraction of deliveries",
            &[("staleness", &self.cdf)],
        );
        std::fs::write(
            dir.join(format!("{}-staleness.svg", self.scenario)),
            svg.into_string(),
        )?;
        Ok((json, html))
    }

    fn html(&self) -> Markup {
        let t = |f: fn(&Sample) -> f64| {
            self.timeline
                .iter()
                .map(|s| (s.t, f(s)))
                .collect::<Vec<_>>()
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "ghostread load: " (self.scenario) }
                    style { (PreEscaped("body{font:15px system-ui,sans-serif;max-width:960px;margin:2rem auto;color:#1f2328}pre{background:#f3f0ea;padding:1rem;overflow-x:auto}svg{display:block;margin:1rem 0}h1{font-size:1.6rem}")) }
                }
                body {
                    h1 { "ghostread load: " (self.scenario) }
                    p { code { (self.command) } }
                    pre { (self.table()) }
                    h2 { "Staleness" }
                    (chart("Staleness CDF", "ms", "fraction of deliveries", &[("staleness", &self.cdf)]))
                    (chart("Staleness over time", "s", "ms", &[("p50", &t(|s| s.p50_ms)), ("p99", &t(|s| s.p99_ms))]))
                    h2 { "Load" }
                    (chart("Open streams over time", "s", "streams", &[("open", &t(|s| s.open as f64))]))
                    (chart("CPU over time", "s", "cores", &[("server", &t(|s| s.server_cores)), ("harness", &t(|s| s.harness_cores))]))
                    (chart("Server memory over time", "s", "MiB", &[("RSS", &t(|s| s.server_rss_mib))]))
                }
            }
        }
    }
}

const COLORS: [&str; 3] = ["#b4421f", "#0b57a4", "#2e8b57"];

/// A line chart as inline SVG.
fn chart(title: &str, x_label: &str, y_label: &str, series: &[(&str, &Vec<(f64, f64)>)]) -> Markup {
    let (w, h, left, bottom, top, right) = (760.0, 260.0, 64.0, 40.0, 28.0, 16.0);
    let points = series.iter().flat_map(|(_, s)| s.iter());
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let y_max = points.map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.05;
    let x = |v: f64| left + v / x_max * (w - left - right);
    let y = |v: f64| h - bottom - v / y_max * (h - bottom - top);
    let ticks: Vec<f64> = (0..=4).map(|i| f64::from(i) / 4.0).collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) viewBox={"0 0 " (w) " " (h)} role="img" aria-label=(title) {
            text x=(left) y="16" font-weight="bold" { (title) }
            @for f in &ticks {
                line x1=(left) x2=(w - right) y1=(y(f * y_max)) y2=(y(f * y_max)) stroke="#e4e0d8" {}
                text x=(left - 6.0) y=(y(f * y_max) + 4.0) text-anchor="end" font-size="11" { (format!("{:.3}", f * y_max).trim_end_matches('0').trim_end_matches('.')) }
                text x=(x(f * x_max)) y=(h - bottom + 16.0) text-anchor="middle" font-size="11" { (format!("{:.1}", f * x_max)) }
            }
            text x=((w + left) / 2.0) y=(h - 6.0) text-anchor="middle" font-size="12" { (x_label) }
            text x="14" y=((h - bottom + top) / 2.0) font-size="12" transform={"rotate(-90 14 " ((h - bottom + top) / 2.0) ")"} text-anchor="middle" { (y_label) }
            @for (i, (name, data)) in series.iter().enumerate() {
                @let color = COLORS[i % COLORS.len()];
                polyline fill="none" stroke=(color) stroke-width="2"
                    points=(data.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect::<Vec<_>>().join(" ")) {}
                text x=(w - right - 100.0) y=(top + 14.0 * i as f64) fill=(color) font-size="12" { (name) }
            }
        }
    }
}

/// A table line of percentiles, or `none` when there are none.
fn line_or(percentiles: &Option<Percentiles>, none: &str) -> String {
    percentiles
        .as_ref()
        .filter(|p| p.count > 0)
        .map_or_else(|| none.into(), Percentiles::line)
}

fn held_p99(report: &Report) -> f64 {
    report.held_staleness_ms.as_ref().map_or(0.0, |h| h.p99)
}

fn near_p99(report: &Report) -> f64 {
    report.near_staleness_ms.as_ref().map_or(0.0, |h| h.p99)
}

fn crowd_p99(report: &Report) -> f64 {
    report.crowd_staleness_ms.as_ref().map_or(0.0, |h| h.p99)
}

fn hello_p99(report: &Report) -> f64 {
    report.hello_ms.as_ref().map_or(0.0, |h| h.p99)
}

/// `--compare a.json b.json`: the change from a to b in what matters.
pub fn compare(a: &Path, b: &Path) -> String {
    let load = |p: &Path| -> Report {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not a load report: {e}", p.display()))
    };
    let (a, b) = (load(a), load(b));
    let rows = [
        ("staleness p50 ms", a.staleness_ms.p50, b.staleness_ms.p50),
        ("staleness p99 ms", a.staleness_ms.p99, b.staleness_ms.p99),
        (
            "staleness p99.9 ms",
            a.staleness_ms.p999,
            b.staleness_ms.p999,
        ),
        ("staleness max ms", a.staleness_ms.max, b.staleness_ms.max),
        ("p99 once all were in", held_p99(&a), held_p99(&b)),
        ("crowd staleness p99 ms", crowd_p99(&a), crowd_p99(&b)),
        ("neighbours' moves p99 ms", near_p99(&a), near_p99(&b)),
        ("time to hello p99 ms", hello_p99(&a), hello_p99(&b)),
        ("deliveries/s", a.deliveries_per_sec, b.deliveries_per_sec),
        ("moves/s", a.moves_per_sec, b.moves_per_sec),
        ("frames written/s", a.frames_per_sec, b.frames_per_sec),
        ("server CPU cores", a.server_cpu_cores, b.server_cpu_cores),
        (
            "server bytes/reader",
            a.server_bytes_per_reader,
            b.server_bytes_per_reader,
        ),
        (
            "failed connections",
            a.connections_failed as f64,
            b.connections_failed as f64,
        ),
    ];
    let mut out = format!(
        "{:<22} {:>12} {:>12} {:>9}\n",
        format!("{} → {}", a.scenario, b.scenario),
        "a",
        "b",
        "change"
    );
    for (name, x, y) in rows {
        let change = if x.abs() > 1e-12 {
            format!("{:+.1} %", (y - x) / x * 100.0)
        } else {
            "—".into()
        };
        let _ = writeln!(out, "{name:<22} {x:>12.2} {y:>12.2} {change:>9}");
    }
    out
}
