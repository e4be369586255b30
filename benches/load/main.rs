//! The load harness: simulated readers, each with a real event stream and
//! real position POSTs, against a real ghostread.
//!
//! ```text
//! cargo bench --bench load -- <scenario> [options]     (--help lists them)
//! scenarios: hot-room, blog, idle-crowd, churn, ramp, cluster (two instances and Redis), viral
//! cluster costs: --instances N, --redis-cluster, --elsewhere-moves M (the rest of a big cluster)
//! cargo bench --bench load -- --compare a.json b.json  the change between two runs
//! cargo bench --bench load -- <scenario> --against OTHER [--rounds N]  two builds, alternated
//! ```
//!
//! Staleness: a move's POST is sent at t0; for every other reader of that
//! post, the time until it sees that position or a newer one of the ghost.
//!
//! `run.rs` drives one run a second at a time; `scenario.rs` holds the
//! scenarios and the command line; the rest is named for what it holds.

mod against;
mod browser;
mod elsewhere;
mod http;
mod marker;
mod ramp;
mod reader;
mod redis_server;
mod report;
mod run;
mod scenario;
mod shared;
mod stats;
mod target;
mod transport;
mod watcher;

use report::Report;
use scenario::Cli;
use target::Target;

/// Raises this process's open-file limit as far as it may go, and says how
/// far that is.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

fn main() {
    let (cli, command) = Cli::parse_args();
    if let Some([a, b]) = cli.compare.as_deref() {
        print!("{}", report::compare(a, b));
        return;
    }
    let Some(scenario) = cli.scenario() else {
        eprintln!("name a scenario (--help lists them)");
        std::process::exit(2);
    };
    let fd_limit = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Some(theirs) = &cli.against {
        let held = runtime.block_on(against::compare(
            &scenario,
            &command,
            (theirs, cli.server.as_deref()),
            cli.rounds,
            cli.worse_than,
            &cli.out,
            fd_limit,
        ));
        if !held {
            eprintln!(
                "this build is worse than {} by more than {}%",
                theirs.display(),
                cli.worse_than
            );
            std::process::exit(1);
        }
        return;
    }
    let report: Report = runtime.block_on(async {
        let target = match &cli.url {
            Some(url) => Target::remote(url, cli.posts.clone()).await,
            None => Target::spawn(cli.server.as_deref(), &scenario),
        };
        let mut run = run::Run::start(scenario, target, fd_limit).await;
        run.drive().await;
        run.report(&command).await
    });
    print!("\n{}", report.table());
    match report.save(&cli.out) {
        Ok((json, html)) => println!("report: {} and {}", json.display(), html.display()),
        Err(error) => eprintln!("cannot write the report in {}: {error}", cli.out.display()),
    }
    let problems = report.problems();
    if cli.expect_clean && !problems.is_empty() {
        eprintln!("not a clean run: {}", problems.join("; "));
        std::process::exit(1);
    }
}
