//! Every compile-fail fixture says it once: its reviewed `.stderr` snapshot holds exactly one
//! error, or, for a fixture named `several_*` (several distinct mistakes in one item), exactly one
//! distinct error per mistake. A repeated message or a cascade (a second error that only follows
//! from the first) fails this test, which names every offending snapshot.
//!
//! This reads the snapshots that `tests/ui.rs` checks against the compiler, so the two together
//! prove what the README promises: nothing downstream fails a second time.
#![allow(missing_docs)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

/// How many distinct mistakes each `several_*` fixture makes, by path under `tests/ui`.
const MISTAKES: &[(&str, usize)] = &[
    // `hok`, `secret` on the struct, `default` twice, `redact`.
    ("derive_layer/fail/several_errors", 4),
    // `5x`, `lgo`, a `Principal` without `auth`, `request_id` inside `log`.
    ("handler/fail/several_errors", 4),
    // `befor`, `'a`, swapped parameters, `&mut Context`, no return type, an unused `state`.
    ("middleware_fn/fail/several_errors", 6),
];

/// The top-level diagnostics of a snapshot: each `error: ..` or `error[E..]: ..` line.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| {
            line.starts_with("error:") || (line.starts_with("error[") && line.contains("]:"))
        })
        .collect()
}

/// What is wrong with one snapshot, if anything.
fn verdict(name: &str, stderr: &str) -> Option<String> {
    let errors = errors(stderr);
    let mut seen = BTreeMap::<&str, usize>::new();
    for error in &errors {
        *seen.entry(error).or_default() += 1;
    }
    let repeated: Vec<&str> = seen
        .iter()
        .filter(|&(_, &count)| count > 1)
        .map(|(&error, _)| error)
        .collect();
    if !repeated.is_empty() {
        return Some(format!("repeats {repeated:?}"));
    }
    let several = Path::new(name)
        .file_name()
        .and_then(|file| file.to_str())
        .is_some_and(|file| file.starts_with("several_"));
    if several {
        let Some(&(_, expected)) = MISTAKES.iter().find(|(fixture, _)| *fixture == name) else {
            return Some(String::from(
                "is a `several_*` fixture missing from `MISTAKES` in tests/one_error.rs",
            ));
        };
        if errors.len() != expected {
            return Some(format!(
                "makes {expected} mistakes but reports {} errors: {errors:?}",
                errors.len()
            ));
        }
        return None;
    }
    match errors.len() {
        1 => None,
        0 => Some(String::from("reports no error")),
        n => Some(format!("reports {n} errors: {errors:?}")),
    }
}

fn fail_snapshots() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut found = Vec::new();
    for group in fs::read_dir(&root).expect("tests/ui exists") {
        let fail = group.expect("readable tests/ui").path().join("fail");
        let Ok(entries) = fs::read_dir(&fail) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable fixture directory").path();
            if path.extension().is_some_and(|ext| ext == "stderr") {
                let name = path
                    .strip_prefix(&root)
                    .expect("under tests/ui")
                    .with_extension("")
                    .to_string_lossy()
                    .replace('\\', "/");
                found.push((name, path));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_fail_snapshot_reports_each_mistake_once() {
    let snapshots = fail_snapshots();
    assert!(
        snapshots.len() > 50,
        "expected the fail fixtures under tests/ui, found {}",
        snapshots.len()
    );
    let offenders: Vec<String> = snapshots
        .iter()
        .filter_map(|(name, path)| {
            let stderr = fs::read_to_string(path).expect("readable snapshot");
            verdict(name, &stderr).map(|why| format!("{name} {why}"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "{} snapshot(s) do not say it once:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn every_several_fixture_in_the_table_exists() {
    let snapshots = fail_snapshots();
    for (fixture, _) in MISTAKES {
        assert!(
            snapshots.iter().any(|(name, _)| name == fixture),
            "`MISTAKES` names {fixture}, which has no snapshot"
        );
    }
}

#[test]
fn a_single_error_passes() {
    let stderr = "error: expected `N: Next`\n --> x.rs:1:1\n  |\n";
    assert_eq!(verdict("middleware_fn/fail/x", stderr), None);
}

#[test]
fn a_repeated_error_is_an_offender() {
    let stderr = "error[E0433]: cannot find crate `x`\n  |\nerror[E0433]: cannot find crate `x`\n";
    let why = verdict("derive_layer/fail/x", stderr).expect("an offender");
    assert!(why.starts_with("repeats"), "{why}");
}

#[test]
fn a_cascade_is_an_offender() {
    let stderr = "error: expected `N: Next`\n  |\nerror[E0599]: no method named `run`\n";
    let why = verdict("middleware_fn/fail/x", stderr).expect("an offender");
    assert!(why.starts_with("reports 2 errors"), "{why}");
}

#[test]
fn notes_and_help_lines_are_not_errors() {
    let stderr =
        "error: x\nnote: required by a bound\n  = help: error: not this one\nwarning: unused\n";
    assert_eq!(errors(stderr), ["error: x"]);
}

#[test]
fn a_several_fixture_must_match_its_mistake_count() {
    let two = "error: a\nerror: b\n";
    let name = "middleware_fn/fail/several_errors";
    let why = verdict(name, two).expect("6 mistakes, 2 errors");
    assert!(why.starts_with("makes 6 mistakes"), "{why}");
    let unknown = verdict("middleware_fn/fail/several_new", two).expect("not in the table");
    assert!(unknown.contains("MISTAKES"), "{unknown}");
}

#[test]
fn a_several_fixture_may_not_repeat_a_message() {
    let stderr = "error: a\nerror: a\nerror: b\nerror: c\n";
    let why = verdict("derive_layer/fail/several_errors", stderr).expect("a repeat");
    assert!(why.starts_with("repeats"), "{why}");
}
