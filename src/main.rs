//! The `ghostread` binary: command line → [`Config`] → [`ghostread::run`],
//! with logging set up and the stop signals watched. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use ghostread::Config;

/// A blog server where readers see each other as ghosts in the margin, live.
///
/// Every flag has an environment twin (GHOSTREAD_ADDR for --addr, and so on).
#[derive(Parser, Debug)]
#[command(name = "ghostread", version)]
struct Args {
    /// Every setting of the server (`config.rs` declares each once).
    #[command(flatten)]
    config: Config,
    /// Log level: error, warn, info, debug (every request) or trace.
    #[arg(long, env = "GHOSTREAD_LOG", default_value = "info")]
    log: tracing::Level,
    /// Log lines as text for people, or one JSON object per line for log
    /// shippers. Text has colours only when it goes to a terminal.
    #[arg(long, env = "GHOSTREAD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_max_level(args.log)
        .with_target(false)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => {
            // A log file or journal gets no colour codes; NO_COLOR is heeded.
            use std::io::IsTerminal;
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
    }
    let config = args.config;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ghostread::run(config, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await; // If even Ctrl-C cannot be watched, stopping is all that is left.
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
