//! The documents a person acts on say what the server does: the operating
//! guide's flag table is `--help`'s, flag for flag and default for default,
//! so neither can drift from the one declaration of each setting.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Each flag `--help` lists (but `--help` and `--version`), with its
/// default if it has one.
fn flags_in_help() -> BTreeMap<String, Option<String>> {
    let output = Command::new(env!("CARGO_BIN_EXE_ghostread"))
        .arg("--help")
        .output()
        .expect("run ghostread --help");
    assert!(output.status.success(), "--help exits 0");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            let name = rest.split([' ', '=', '<']).next().unwrap_or_default();
            current = Some(format!("--{name}"));
            if !["--help", "--version"].contains(&current.as_deref().unwrap_or_default()) {
                flags.insert(format!("--{name}"), None);
            }
        } else if let (Some(flag), Some(default)) = (&current, trimmed.strip_prefix("[default: ")) {
            if let Some(entry) = flags.get_mut(flag) {
                *entry = Some(default.trim_end_matches(']').to_string());
            }
        }
    }
    flags
}

/// Each flag the guide's table names, with what its default column says.
fn flags_in_guide() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/OPERATING.md")).expect("docs/OPERATING.md");
    let mut flags = BTreeMap::new();
    for row in guide.lines().filter(|line| line.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (names, default) = (cells[1], cells[2]);
        for name in names.split('`').filter(|part| part.starts_with("--")) {
            let flag = name.split(' ').next().unwrap_or_default().to_string();
            flags.insert(flag, default.trim_matches('`').to_string());
        }
    }
    flags
}

#[test]
fn the_operating_guide_lists_every_flag_with_its_default_as_help_does() {
    let help = flags_in_help();
    let guide = flags_in_guide();
    assert!(help.len() > 30, "--help lists the flags: {help:?}");
    let missing: Vec<&String> = help.keys().filter(|f| !guide.contains_key(*f)).collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATING.md's table lacks {missing:?}"
    );
    let unknown: Vec<&String> = guide.keys().filter(|f| !help.contains_key(*f)).collect();
    assert!(
        unknown.is_empty(),
        "docs/OPERATING.md's table names flags --help does not: {unknown:?}"
    );
    for (flag, default) in &help {
        if let Some(default) = default {
            assert_eq!(
                &guide[flag], default,
                "docs/OPERATING.md gives {flag} another default than --help"
            );
        }
    }
}

/// The documents render as written: every `## ` heading is a heading once
/// rendered, so no code fence swallows what follows it (a fence nested in
/// one of the same length closes it early).
#[test]
fn every_heading_of_the_documents_renders_as_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "README.md",
        "docs/OPERATING.md",
        "docs/SCALING.md",
        "docs/PERFORMANCE.md",
        "ARCHITECTURE.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let mut rendered = String::new();
        pulldown_cmark::html::push_html(&mut rendered, pulldown_cmark::Parser::new(&text));
        let written = text.lines().filter(|l| l.starts_with("## ")).count();
        let headings = rendered.matches("<h2>").count();
        assert!(written > 0, "{file} has sections");
        assert_eq!(headings, written, "{file}: a code fence swallows a heading");
    }
}
