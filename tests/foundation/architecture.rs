//! The layering, read from the source as text: a module that imports a layer above it
//! fails here, whatever the compiler would allow.

use std::path::{Path, PathBuf};

fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` (or `dir` itself when it is a file), with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    if dir.is_file() {
        found.push((dir.to_owned(), std::fs::read_to_string(dir).unwrap()));
        return found;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    found
}

/// Lines of the files under `layer` that reach any of `forbidden` (module paths such as
/// `crate::http`), by absolute path or by `super::` from the layer's own root.
fn reaches(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = source_root();
    let layer_path = root.join(layer);
    let layer_path = if layer_path.exists() { layer_path } else { root.join(format!("{layer}.rs")) };
    assert!(layer_path.exists(), "no layer {layer}");
    let mut hits = Vec::new();
    for (path, text) in sources(&layer_path) {
        let depth = path.strip_prefix(&root).unwrap().components().count().saturating_sub(1);
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for module in forbidden {
                let name = module.trim_start_matches("crate::");
                let mut paths = vec![module.to_string(), format!("consultantpro::{name}")];
                if depth > 0 {
                    paths.push(format!("{}{name}", "super::".repeat(depth)));
                }
                let reached = paths.iter().any(|p| {
                    code.contains(&format!("{p}::"))
                        || code.contains(&format!("{p};"))
                        || code.contains(&format!("{p}{{"))
                });
                if reached {
                    hits.push(format!("{}:{}: {}", path.display(), number + 1, line.trim()));
                }
            }
        }
    }
    hits
}

#[test]
fn the_live_layer_never_imports_http() {
    let hits = reaches("actors", &["crate::http"]);
    assert!(hits.is_empty(), "actors/ imports http/:\n{}", hits.join("\n"));
}

#[test]
fn the_domain_imports_neither_http_nor_actors() {
    let hits = reaches("domain", &["crate::http", "crate::actors", "crate::bus", "crate::outbound"]);
    assert!(hits.is_empty(), "domain/ imports a layer above it:\n{}", hits.join("\n"));
}

#[test]
fn the_database_layer_and_the_bus_stand_below_the_domain_and_the_actors() {
    let db = reaches("db", &["crate::domain", "crate::http", "crate::actors"]);
    assert!(db.is_empty(), "db/ imports a layer above it:\n{}", db.join("\n"));
    let bus = reaches("bus", &["crate::http", "crate::actors"]);
    assert!(bus.is_empty(), "bus/ imports a layer above it:\n{}", bus.join("\n"));
    let error = reaches("error", &["crate::http", "crate::actors"]);
    assert!(error.is_empty(), "the shared error type imports a layer above it:\n{}", error.join("\n"));
}

#[test]
fn the_job_runner_and_its_handlers_do_not_import_each_other() {
    let runner = reaches("outbound/runner.rs", &["crate::outbound::webhooks"]);
    let runner_relative: Vec<String> = sources(&source_root().join("outbound/runner.rs"))
        .iter()
        .flat_map(|(_, text)| {
            text.lines().filter(|l| l.contains("super::webhooks")).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    let handler: Vec<String> = sources(&source_root().join("outbound/webhooks.rs"))
        .iter()
        .flat_map(|(_, text)| text.lines().filter(|l| l.contains("runner::")).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert!(
        runner.is_empty() && runner_relative.is_empty(),
        "the runner imports a handler: {runner:?} {runner_relative:?}"
    );
    assert!(handler.is_empty(), "the webhook handler imports the runner: {handler:?}");
}

#[test]
fn the_check_finds_an_import_when_there_is_one() {
    // The positive control: http/ does import actors/, and the scan sees it.
    let hits = reaches("http", &["crate::actors"]);
    assert!(!hits.is_empty(), "the scan missed http/'s imports of actors/");
}
