//! The named scenarios and the command line that picks and adjusts them.

use std::path::PathBuf;

use crate::report;

/// One scenario's shape; every field can be overridden from the command line.
#[derive(Clone)]
pub struct Scenario {
    pub name: String,
    pub posts: usize,
    pub readers: usize,
    pub hz: f64,
    pub seconds: u64,
    pub ramp_up: u64,
    /// Pick posts by a Zipf law (a few popular, a long tail) or evenly.
    pub zipf: bool,
    pub leave_chance: f64,
    /// Readers joining (and as many leaving) per second, on top of the crowd.
    pub churn_per_sec: f64,
    pub tick_ms: u64,
    pub seed: u64,
    /// Server instances; more than one share readers through Redis.
    pub instances: usize,
}

fn scenario(name: &str) -> Option<Scenario> {
    let base = Scenario {
        name: name.to_string(),
        posts: 1,
        readers: 200,
        hz: 10.0,
        seconds: 20,
        ramp_up: 2,
        zipf: false,
        leave_chance: 0.0,
        churn_per_sec: 0.0,
        tick_ms: 10,
        seed: 1,
        instances: 1,
    };
    Some(match name {
        "hot-room" => base,
        "blog" => Scenario {
            posts: 50,
            readers: 2000,
            hz: 2.0,
            ramp_up: 5,
            zipf: true,
            leave_chance: 0.02,
            ..base
        },
        "idle-crowd" => Scenario {
            posts: 180,
            readers: 18_000,
            hz: 0.1,
            seconds: 30,
            ramp_up: 15,
            ..base
        },
        "churn" => Scenario {
            posts: 50,
            readers: 2000,
            hz: 1.0,
            ramp_up: 5,
            zipf: true,
            churn_per_sec: 200.0,
            ..base
        },
        "cluster" => Scenario {
            posts: 10,
            readers: 400,
            hz: 2.0,
            ramp_up: 3,
            instances: 2,
            ..base
        },
        "ramp" => Scenario {
            posts: 1000,
            readers: 120_000,
            hz: 0.1,
            seconds: 5,
            ramp_up: 0,
            ..base
        },
        _ => return None,
    })
}

pub struct Cli {
    pub scenario: Scenario,
    pub url: Option<String>,
    pub posts: Option<Vec<String>>,
    pub out: PathBuf,
    pub command: String,
    /// Exit with status 1 unless the run was clean (see `Report::problems`).
    pub expect_clean: bool,
}

fn usage(message: &str) -> ! {
    eprintln!("{message}\nusage: cargo bench --bench load -- <hot-room|blog|idle-crowd|churn|ramp|cluster> [--instances N] [--url URL] [--posts a,b] [--readers N] [--hz F] [--seconds N] [--ramp-up N] [--tick-ms N] [--seed N] [--out DIR] [--expect-clean]\n       cargo bench --bench load -- --compare a.json b.json");
    std::process::exit(2)
}

pub fn parse() -> Cli {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--compare") {
        let (Some(a), Some(b)) = (args.get(1), args.get(2)) else {
            usage("--compare needs two JSON files")
        };
        print!("{}", report::compare(a.as_ref(), b.as_ref()));
        std::process::exit(0);
    }
    let Some(name) = args.first() else {
        usage("name a scenario")
    };
    let Some(mut scenario) = scenario(name) else {
        usage(&format!("unknown scenario {name}"))
    };
    let mut cli = Cli {
        scenario: scenario.clone(),
        url: None,
        posts: None,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ghostread-load"),
        command: format!("cargo bench --bench load -- {}", args.join(" ")),
        expect_clean: false,
    };
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--expect-clean" {
            cli.expect_clean = true;
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| usage(&format!("{} needs a value", args[i])));
        let number = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{} needs a number", args[i])))
        };
        match args[i].as_str() {
            "--url" => cli.url = Some(value),
            "--posts" => cli.posts = Some(value.split(',').map(str::to_string).collect()),
            "--out" => cli.out = PathBuf::from(value),
            "--readers" => scenario.readers = number(&value).clamp(1.0, 1_000_000.0) as usize,
            "--hz" => scenario.hz = number(&value).clamp(0.01, 10.0),
            "--seconds" => scenario.seconds = number(&value).clamp(1.0, 3600.0) as u64,
            "--ramp-up" => scenario.ramp_up = number(&value).clamp(0.0, 600.0) as u64,
            "--tick-ms" => scenario.tick_ms = number(&value).clamp(1.0, 1000.0) as u64,
            "--seed" => scenario.seed = number(&value) as u64,
            "--instances" => scenario.instances = number(&value).clamp(1.0, 8.0) as usize,
            other => usage(&format!("unknown option {other}")),
        }
        i += 2;
    }
    cli.scenario = scenario;
    cli
}
