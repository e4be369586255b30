//! What a compiled-in script or stylesheet is sent as. The files in `web/`
//! are written to be read, with a comment on every part; a browser needs
//! none of that, and an embedded page pays for every byte (issue 23: the
//! embed adds at most 15 KiB gzipped). So whole-line comments, blank lines
//! and indentation are left out once at start, and a gzipped copy is kept
//! beside the result for clients that accept it.
//!
//! The stripping is line-based and so only safe for code that never
//! continues a string over a line break; `web/` keeps to that (no template
//! literals, no line continuations), and a test holds it there. Comments
//! after code on the same line stay: telling them from `//` inside a
//! string or a regular expression needs a real parser, for a few bytes.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// `text` without whole-line comments, blank lines and indentation. `//`
/// comments count only in JavaScript (in CSS `//` is not a comment).
pub fn strip(text: &str, javascript: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.lines() {
        let mut line = line.trim();
        if in_block {
            match line.find("*/") {
                Some(end) => {
                    in_block = false;
                    line = line[end + 2..].trim();
                }
                None => continue,
            }
        } else if let Some(rest) = line.strip_prefix("/*") {
            match rest.find("*/") {
                Some(end) => line = rest[end + 2..].trim(),
                None => {
                    in_block = true;
                    continue;
                }
            }
        }
        if line.is_empty() || (javascript && line.starts_with("//")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `bytes`, gzipped at the best ratio: done once per file at start. `None`
/// only if the encoder failed, which a `Vec` writer never makes it do; the
/// file is then sent as it is.
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .ok()
}

/// Whether an `Accept-Encoding` value takes gzip: named (or `*`) without
/// `q=0`, as RFC 9110 §12.5.3 reads it.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim(); // ok: split yields at least one part
        let refused = parts.any(|param| {
            let param = param.trim();
            param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_line_comments_blank_lines_and_indentation_go() {
        let script = "// heading\n(function () {\n  /** Why.\n   * More. */\n  const a = 1; // stays\n\n  /* one */ const b = \"//x\";\n  /*\n  gone\n  */ const c = 3;\n})();\n";
        assert_eq!(
            strip(script, true),
            "(function () {\nconst a = 1; // stays\nconst b = \"//x\";\nconst c = 3;\n})();\n"
        );
    }

    #[test]
    fn in_css_a_double_slash_is_not_a_comment() {
        let css = "/* the lane */\n.a {\n  background: url(//x/y.svg);\n}\n";
        assert_eq!(strip(css, false), ".a {\nbackground: url(//x/y.svg);\n}\n");
    }

    #[test]
    fn gzip_is_taken_when_named_or_starred_and_not_refused() {
        for (header, want) in [
            ("gzip", true),
            ("br, gzip;q=0.8", true),
            ("GZIP", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0, br", false),
            ("br, deflate", false),
            ("", false),
            ("x-gzip-not", false),
        ] {
            assert_eq!(accepts_gzip(header), want, "{header:?}");
        }
    }

    #[test]
    fn a_gzipped_copy_inflates_to_the_original() {
        use std::io::Read;
        let text = "const ghosts = new Map();\n".repeat(50);
        let packed = gzip(text.as_bytes()).expect("gzip into a Vec");
        assert!(packed.len() < text.len() / 5);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut back)
            .expect("inflate");
        assert_eq!(back, text);
    }

    /// The stripping is line-based: code in `web/` must never carry a
    /// string over a line break, or stripping could change it.
    #[test]
    fn web_scripts_never_continue_a_string_over_a_line() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut scripts = vec![root.join("embed.js"), root.join("ghosts.js")];
        for entry in std::fs::read_dir(root.join("client")).expect("read web/client") {
            scripts.push(entry.expect("entry").path());
        }
        for path in scripts {
            let text = strip(&std::fs::read_to_string(&path).expect("read script"), true);
            assert!(
                !text.contains('`'),
                "{}: no template literals (nor backticks in comments after code)",
                path.display()
            );
            assert!(
                !text.lines().any(|line| line.ends_with('\\')),
                "{}: no line continuations",
                path.display()
            );
        }
    }
}
