//! axe-core (Deque's accessibility engine, as browsers' own audits use
//! it), run in real Chromium on the page a browser shows. It comes from the
//! npm registry at the version pinned in `tests/tools/package-lock.json`:
//! `.ci/test` installs it into `target/tools` (or set `AXE_CORE` to an
//! `axe.min.js`).

use serde_json::Value;

use super::browser::Browser;

/// axe-core's source.
pub fn source() -> String {
    let path = std::env::var("AXE_CORE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/tools/node_modules/axe-core/axe.min.js"
        )
        .to_string()
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core is not at {path} ({e}): run bash .ci/test, which installs the version tests/tools/package-lock.json pins")
    })
}

/// Runs axe-core (its source: `axe`) on the page `browser` shows; the
/// serious and critical violations, each with its rule, impact, how many
/// nodes and the first one's HTML.
pub async fn serious_violations(browser: &Browser, axe: &str) -> Vec<Value> {
    browser.js(axe, vec![]).await;
    let violations = browser
        .client
        .execute_async(
            "const done = arguments[0];
             axe.run(document, { resultTypes: ['violations'] }).then(
               r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                              first: v.nodes[0] && v.nodes[0].html }))),
               e => done([{ id: 'axe failed', first: String(e) }]));",
            vec![],
        )
        .await
        .expect("axe ran");
    violations.as_array().cloned().unwrap_or_default()
}
