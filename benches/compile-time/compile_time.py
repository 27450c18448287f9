#!/usr/bin/env python3
"""Compile time of `#[handler]`: an app of N annotated handlers against the same app written
without the macros (the same std layers stacked by hand with `ServiceBuilder`), each built in
debug from clean workspace crates (dependencies prebuilt).

    python3 benches/compile-time/compile_time.py            # 100 handlers, 5 runs
    python3 benches/compile-time/compile_time.py --runs 3 --handlers 50

The two apps are generated under a temp dir outside the repository (default
/tmp/mw-compile-time), with their own CARGO_TARGET_DIR there, so the repository's target is never
cleaned. They depend on this checkout's `middleware-std` by path (features `full`, `axum`) and
use the repository's Cargo.lock, offline. A run cleans the generated crate and our three crates
(`cargo clean -p`), then times `cargo build`; a second timing rebuilds the generated crate alone
(its source touched). Each build is measured in CPU time (user + system of cargo and every
rustc it runs) and wall time; CPU time is the figure compared, since on a shared machine the wall
time mostly measures the neighbours. The runs alternate the two apps; the report gives medians
and the ratio macros / plain (target: at most 1.3), plus the generated line counts.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = ["middleware-core", "middleware-macros", "middleware-std"]
LAYERS = 'request_id, log, timeout = "250ms"'


def manifest(name):
    std = REPO / "middleware-std"
    return f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
middleware-std = {{ path = "{std}", features = ["full", "axum"] }}
axum = {{ version = "0.8", default-features = false, features = ["tokio", "http1"] }}
tokio = {{ version = "1", features = ["rt"] }}
tower = {{ version = "0.5", features = ["util"] }}
"""


def macros_app(n):
    out = [
        "//! Generated: handlers annotated with `#[handler]`.",
        "use axum::{Router, routing::get};",
        "use middleware_std::{RequestId, handler};",
        "",
    ]
    for i in range(n):
        out += [
            f"#[handler({LAYERS})]",
            f"async fn h{i}(id: RequestId) -> String {{",
            f'    format!("{i} {{id}}")',
            "}",
            "",
        ]
    out.append("fn app() -> Router {")
    out.append("    Router::new()")
    out += [f'        .route("/h{i}", get(h{i}))' for i in range(n)]
    return with_main(out)


def plain_app(n):
    out = [
        "//! Generated: the same handlers and layers, written without the macros.",
        "use std::{convert::Infallible, time::Duration};",
        "",
        "use axum::{Router, body::Body};",
        "use middleware_std::{",
        "    RequestExt, RequestId,",
        "    http::{Request, Response},",
        "    logging::LogLayer,",
        "    request_id::SetRequestIdLayer,",
        "    timeout::TimeoutLayer,",
        "};",
        "use tower::{ServiceBuilder, service_fn};",
        "",
    ]
    for i in range(n):
        out += [
            f"async fn h{i}(req: Request<Body>) -> Result<Response<String>, Infallible> {{",
            "    let id = req.try_context().and_then(|cx| cx.get::<RequestId>().cloned());",
            f'    Ok(Response::new(format!("{i} {{id:?}}")))',
            "}",
            "",
        ]
    out.append("fn app() -> Router {")
    out.append("    Router::new()")
    for i in range(n):
        out += [
            f'        .route_service("/h{i}", ServiceBuilder::new()',
            "            .layer(SetRequestIdLayer::new())",
            "            .layer(LogLayer::new())",
            "            .layer(TimeoutLayer::new(Duration::from_millis(250)))",
            f"            .service(service_fn(h{i})))",
        ]
    return with_main(out)


def with_main(out):
    """The app's source: `out` (open in `app()`'s router), `app()` closed, and the `main` that
    builds it."""
    out += ["}", "", "fn main() {", "    let _ = app();", "}"]
    return "\n".join(out) + "\n"


def generate(root, n):
    root.mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(
        '[workspace]\nresolver = "3"\nmembers = ["app-macros", "app-plain"]\n'
    )
    lock = root / "Cargo.lock"
    if not lock.exists():
        shutil.copy(REPO / "Cargo.lock", lock)
    for name, source in [("app-macros", macros_app(n)), ("app-plain", plain_app(n))]:
        src = root / name / "src"
        src.mkdir(parents=True, exist_ok=True)
        (root / name / "Cargo.toml").write_text(manifest(name))
        main = src / "main.rs"
        if not main.exists() or main.read_text() != source:
            main.write_text(source)


def cargo(root, *args, check=True):
    env = dict(os.environ, CARGO_TARGET_DIR=str(root / "target"))
    env.setdefault("CARGO_BUILD_JOBS", "2")
    return subprocess.run(
        ["cargo", *args, "--offline"],
        cwd=root,
        env=env,
        check=check,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_build(root, app):
    """The build's CPU time (user + system of cargo and every rustc it ran) and wall time. CPU
    time is the figure compared: on a shared machine the wall time mostly measures the
    neighbours."""
    cpu = cpu_of_children()
    start = time.monotonic()
    result = cargo(root, "build", "-p", app, check=False)
    wall = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"`cargo build -p {app}` failed:\n{result.stderr}")
    return cpu_of_children() - cpu, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handlers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mw-compile-time"))
    args = parser.parse_args()
    root = args.dir
    generate(root, args.handlers)
    print(f"generated {args.handlers} handlers per app under {root}; building dependencies")
    for app in ["app-macros", "app-plain"]:
        timed_build(root, app)
    apps = ["app-plain", "app-macros"]
    clean = {app: [] for app in apps}
    alone = {app: [] for app in apps}
    for run in range(args.runs):
        order = apps if run % 2 == 0 else apps[::-1]
        for app in order:
            cargo(root, "clean", "-p", app, *sum((["-p", c] for c in OURS), []))
            clean[app].append(timed_build(root, app))
            (root / app / "src" / "main.rs").touch()
            alone[app].append(timed_build(root, app))
        print(
            f"run {run + 1}: "
            + ", ".join(
                f"{app} {clean[app][-1][0]:.1f}s CPU / {clean[app][-1][1]:.1f}s wall"
                f" (crate alone {alone[app][-1][0]:.2f}s CPU)"
                for app in apps
            )
        )
    lines = {
        app: sum(1 for _ in open(root / app / "src" / "main.rs")) for app in apps
    }

    def median(runs, i):
        return statistics.median(run[i] for run in runs)

    print()
    print(
        f"| app ({args.handlers} handlers) | source lines | clean build, CPU | clean build, wall"
        f" | app crate alone, CPU |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for app in apps:
        print(
            f"| {app} | {lines[app]} | {median(clean[app], 0):.1f} s | {median(clean[app], 1):.1f} s"
            f" | {median(alone[app], 0):.2f} s |"
        )
    ratio = median(clean["app-macros"], 0) / median(clean["app-plain"], 0)
    ratio_wall = median(clean["app-macros"], 1) / median(clean["app-plain"], 1)
    ratio_alone = median(alone["app-macros"], 0) / median(alone["app-plain"], 0)
    print()
    print(
        f"ratio macros / plain (medians of {args.runs}): clean build {ratio:.2f}x CPU"
        f" ({ratio_wall:.2f}x wall), app crate alone {ratio_alone:.2f}x CPU (target <= 1.3x)"
    )


if __name__ == "__main__":
    main()
