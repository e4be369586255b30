//! Counters and gauges, rendered in the Prometheus text format at `/metrics`.
//! Plain atomics with relaxed ordering: each number is read on its own, so no
//! ordering between them is promised or needed. Labels come from fixed sets
//! (status codes, histogram buckets), never from posts or readers, so the
//! output stays the same size however many posts exist.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds one and returns the new value, for a gauge that is also checked
    /// against a limit.
    pub fn inc_and_get(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the tick-time histogram, in seconds.
const TICK_BUCKETS: [f64; 8] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; TICK_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(TICK_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed))
    }
}

/// The answers `POST .../position` can give, for its counters.
pub const POSITION_STATUSES: [u16; 10] = [204, 400, 404, 405, 408, 410, 413, 415, 429, 503];

#[derive(Debug, Default)]
pub struct Metrics {
    pub streams_open: Gauge,
    pub ghosts: Gauge,
    /// Connections open now (every protocol).
    pub connections_open: Gauge,
    pub rooms: Gauge,
    pub parked: Gauge,
    pub joins: Counter,
    /// New readers counted in a post's `total` (see `Config::count_after`).
    pub readers_counted: Counter,
    pub resumes: Counter,
    pub takeovers: Counter,
    pub leaves: Counter,
    /// Leaves said by the reader's page (`POST …/leave`), in `leaves` too.
    pub goodbyes: Counter,
    /// Long-poll sessions open (readers whose stream did not stream).
    pub pollers: Gauge,
    pub streams_refused: Counter,
    pub moves_received: Counter,
    pub moves_coalesced: Counter,
    pub frames_published: Counter,
    pub frames_sent: Counter,
    pub bytes_sent: Counter,
    pub lag_snapshots: Counter,
    /// Cluster mode: messages, and their bytes, heard from other instances
    /// through Redis (the posts this instance serves, and the control
    /// channel).
    pub cluster_messages_in: Counter,
    pub cluster_bytes_in: Counter,
    pub manager_queue_depth: Gauge,
    pub tick_seconds: Histogram,
    pub counts_saved: Counter,
    pub counts_save_errors: Counter,
    position_answers: [Counter; POSITION_STATUSES.len()],
}

impl Metrics {
    pub fn position_answer(&self, status: u16) {
        if let Some(i) = POSITION_STATUSES.iter().position(|s| *s == status) {
            self.position_answers[i].inc();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP ghostread_build_info The running build: always 1, its version in a label.\n# TYPE ghostread_build_info gauge\nghostread_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "ghostread_connections_open",
            "Client connections open now (HTTP/1.1, HTTP/2, in clear or TLS).",
            self.connections_open.get(),
        );
        gauge(
            "ghostread_streams_open",
            "Event streams open now.",
            self.streams_open.get(),
        );
        gauge(
            "ghostread_ghosts",
            "Ghosts with a live stream.",
            self.ghosts.get(),
        );
        gauge(
            "ghostread_rooms",
            "Posts with at least one reader.",
            self.rooms.get(),
        );
        gauge(
            "ghostread_parked_ghosts",
            "Ended ghosts still resumable by token.",
            self.parked.get(),
        );
        gauge(
            "ghostread_pollers",
            "Readers on long-polling instead of an event stream.",
            self.pollers.get(),
        );
        gauge(
            "ghostread_manager_queue_depth",
            "Commands waiting for the manager.",
            self.manager_queue_depth.get(),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter("ghostread_joins_total", "New ghosts.", self.joins.get());
        counter(
            "ghostread_readers_counted_total",
            "New readers counted in a post's total: at their first position, or once their stream was held long enough.",
            self.readers_counted.get(),
        );
        counter(
            "ghostread_resumes_total",
            "Ghosts resumed by token after their stream ended.",
            self.resumes.get(),
        );
        counter(
            "ghostread_takeovers_total",
            "Streams replaced by a newer stream of the same ghost.",
            self.takeovers.get(),
        );
        counter(
            "ghostread_leaves_total",
            "Ghosts that left.",
            self.leaves.get(),
        );
        counter(
            "ghostread_goodbyes_total",
            "Ghosts that left because their page said goodbye.",
            self.goodbyes.get(),
        );
        counter(
            "ghostread_streams_refused_total",
            "Event streams refused by a reader limit.",
            self.streams_refused.get(),
        );
        counter(
            "ghostread_moves_received_total",
            "Positions applied by the manager.",
            self.moves_received.get(),
        );
        counter(
            "ghostread_moves_coalesced_total",
            "Positions replaced before they were sent.",
            self.moves_coalesced.get(),
        );
        counter(
            "ghostread_frames_published_total",
            "Frames published to rooms.",
            self.frames_published.get(),
        );
        counter(
            "ghostread_frames_sent_total",
            "Frames handed to reader connections.",
            self.frames_sent.get(),
        );
        counter(
            "ghostread_bytes_sent_total",
            "Event-stream bytes handed to reader connections.",
            self.bytes_sent.get(),
        );
        counter(
            "ghostread_cluster_messages_in_total",
            "Cluster mode: messages heard from other instances through Redis.",
            self.cluster_messages_in.get(),
        );
        counter(
            "ghostread_cluster_bytes_in_total",
            "Cluster mode: bytes of the messages heard through Redis.",
            self.cluster_bytes_in.get(),
        );
        counter(
            "ghostread_lag_snapshots_total",
            "Snapshots sent to readers that fell behind.",
            self.lag_snapshots.get(),
        );
        counter(
            "ghostread_counts_saved_total",
            "Successful saves of the reader counts.",
            self.counts_saved.get(),
        );
        counter(
            "ghostread_counts_save_errors_total",
            "Failed saves of the reader counts.",
            self.counts_save_errors.get(),
        );

        let name = "ghostread_position_responses_total";
        let _ = writeln!(
            out,
            "# HELP {name} Answers to POST /posts/{{slug}}/position.\n# TYPE {name} counter"
        );
        for (status, count) in POSITION_STATUSES.iter().zip(&self.position_answers) {
            let _ = writeln!(out, "{name}{{status=\"{status}\"}} {}", count.get());
        }

        let name = "ghostread_tick_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time the manager spent publishing one tick.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in TICK_BUCKETS.iter().zip(&self.tick_seconds.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.tick_seconds.count.load(Ordering::Relaxed);
        let sum = self.tick_seconds.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_bounded_labels() {
        let metrics = Metrics::default();
        metrics.ghosts.set(3);
        metrics.position_answer(429);
        metrics.position_answer(999);
        metrics.tick_seconds.observe(Duration::from_micros(30));
        let text = metrics.render();
        assert!(text.contains("# TYPE ghostread_ghosts gauge\nghostread_ghosts 3\n"));
        assert!(text.contains("ghostread_position_responses_total{status=\"429\"} 1\n"));
        assert!(text.contains("ghostread_tick_seconds_bucket{le=\"0.00005\"} 1\n"));
        assert!(text.contains("ghostread_tick_seconds_bucket{le=\"0.00001\"} 0\n"));
        assert!(text.contains("ghostread_tick_seconds_count 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }
}
