//! `--against PATH`: this build (or `--server`) and another, in runs taken
//! close together and alternated (theirs first), `--rounds` each, so that
//! both see the same machine; then each figure's median side by side, and a
//! failing exit if this build needs more memory per reader or more CPU than
//! `--worse-than` percent over the other's. An older build is started
//! without the flags it predates (see `target.rs`).
//!
//! What it would have caught: 694830c's reader took 7.1 KiB where 8d34537's
//! took 3.1 (`idle-crowd --crowd 0`), and cost 10 % more CPU.

use std::path::{Path, PathBuf};

use crate::report::Report;
use crate::run::Run;
use crate::scenario::Scenario;
use crate::target::Target;

/// Runs both builds `rounds` times each; whether this one held up.
pub async fn compare(
    scenario: &Scenario,
    command: &str,
    (theirs, ours): (&Path, Option<&Path>),
    rounds: u32,
    worse_than: f64,
    out: &Path,
    fd_limit: u64,
) -> bool {
    let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        for (side, binary) in [(0, Some(theirs)), (1, ours)] {
            let label = ["theirs", "ours"][side];
            println!("--- round {round} of {rounds}: {label}");
            let target = Target::spawn(binary, scenario);
            let mut run = Run::start(scenario.clone(), target, fd_limit).await;
            run.drive().await;
            let report = run.report(command).await;
            let dir: PathBuf = out.join(format!("{label}-{round}"));
            if let Err(error) = report.save(&dir) {
                eprintln!("cannot write the report in {}: {error}", dir.display());
            }
            runs[side].push(report);
        }
    }
    let [theirs_runs, ours_runs] = &runs;
    let figures: [Figure; 6] = [
        ("server CPU cores", |r| r.server_cpu_cores, true),
        ("server bytes/reader", |r| r.server_bytes_per_reader, true),
        (
            "staleness p99 ms, all in",
            |r| r.held_staleness_ms.as_ref().map_or(0.0, |h| h.p99),
            false,
        ),
        (
            "crowd staleness p99 ms",
            |r| r.crowd_staleness_ms.as_ref().map_or(0.0, |h| h.p99),
            false,
        ),
        (
            "neighbours' p99 ms",
            |r| r.near_staleness_ms.as_ref().map_or(0.0, |h| h.p99),
            false,
        ),
        ("frames written/s", |r| r.frames_per_sec, false),
    ];
    println!(
        "\n{:<26} {:>12} {:>12} {:>9}   (medians of {rounds}, theirs: {})",
        scenario.name,
        "theirs",
        "ours",
        "change",
        theirs.display()
    );
    let mut held = true;
    for (name, figure, gates) in figures {
        let a = median(theirs_runs.iter().map(figure).collect());
        let b = median(ours_runs.iter().map(figure).collect());
        let change = if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 };
        let worse = gates && change > worse_than;
        held &= !worse;
        println!(
            "{name:<26} {a:>12.3} {b:>12.3} {change:>+8.1}%{}",
            if worse { "   worse" } else { "" }
        );
    }
    held
}

/// A figure of a report: its name, how to read it, and whether this build
/// fails when it is worse by more than `--worse-than`.
type Figure = (&'static str, fn(&Report) -> f64, bool);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
