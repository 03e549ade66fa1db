//! Embeds the built dashboard (`web/dist`, made by `npm run build` in `web/`) into the
//! binary: generates `$OUT_DIR/web_assets.rs` with one `include_bytes!` per file. Without
//! `web/dist` a placeholder page says how to build it, so a Rust-only build still works.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const PLACEHOLDER: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>camstream</title></head><body style=\"font-family:sans-serif;max-width:40rem;margin:4rem auto\">\
<h1>camstream</h1><p>This binary was built without the web dashboard.</p>\
<p>Build it with <code>make build</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, \
then rebuild camstream), or serve a built copy with <code>--web-dir web/dist</code>.</p>\
<p>The REST API is at <a href=\"/api/docs\">/api/docs</a>.</p></body></html>";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = root.join("web/dist");
    // A missing path makes cargo rerun this script on every build, which is what we want
    // until the dashboard has been built once.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut out =
        String::from("/// Files of the built dashboard: path relative to `web/dist`, bytes.\n");
    out.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),").expect("write to String");
    }
    if files.is_empty() {
        writeln!(out, "    (\"index.html\", {PLACEHOLDER:?}.as_bytes()),")
            .expect("write to String");
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// Whether [`FILES`] is the real dashboard (false: the placeholder page).\npub(crate) const BUILT: bool = {};",
        !files.is_empty()
    )
    .expect("write to String");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web_assets.rs");
    std::fs::write(dest, out).expect("write web_assets.rs");
}

fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).expect("read web/dist");
    for entry in entries {
        let path = entry.expect("read web/dist entry").path();
        if path.is_dir() {
            collect(base, &path, files);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            files.push((rel, path.display().to_string()));
        }
    }
}
