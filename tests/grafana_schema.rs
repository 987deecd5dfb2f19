//! The checked-in Grafana dashboard against Grafana's own dashboard types: npm's
//! `@grafana/schema` (the TypeScript types Grafana generates from its dashboard schema) and
//! the TypeScript compiler, both pinned by tests/grafana_schema/package-lock.json and
//! installed by this test into target/grafana-schema-test. The dashboard is written out as
//! an object literal that must satisfy `Dashboard`: every field known to the schema, of its
//! type, and required fields present (an object literal gets TypeScript's excess-property
//! check). What this does not check: fields the schema types as open (`options`, `custom`,
//! a target's query fields), and what Grafana's frontend migrations would change. No
//! Grafana server is needed, nor root.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The pinned packages in target/grafana-schema-test.
fn installed() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana_schema");
    let dir = target().join("grafana-schema-test");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let lock = std::fs::read(src.join("package-lock.json")).unwrap();
    let stamp = dir.join("installed.stamp");
    if std::fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        let out = Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
            ])
            .current_dir(&dir)
            .output()
            .expect("npm (Node's package manager) runs");
        assert!(
            out.status.success(),
            "npm ci of @grafana/schema and typescript in {} failed (the npm registry must be \
             reachable):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    dir
}

/// What an object literal of `dashboard` must satisfy, as a TypeScript module.
fn module(dashboard: &serde_json::Value) -> String {
    // Grafana's types spell some fields as TypeScript enums, which no string literal can
    // satisfy; `Json<T>` is the same type with each enum as the union of its string values.
    format!(
        "import type {{ Dashboard }} from '@grafana/schema';\n\
         type Json<T> = T extends string ? `${{T}}`\n  \
           : T extends (infer E)[] ? Json<E>[]\n  \
           : T extends object ? {{ [K in keyof T]: Json<T[K]> }}\n  \
           : T;\n\
         export const dashboard = ({dashboard:#}) satisfies Json<Dashboard>;\n"
    )
}

/// Type-checks `dashboard` in `dir`: the compiler's errors, if any.
fn check(dir: &Path, name: &str, dashboard: &serde_json::Value) -> Result<(), String> {
    let file = dir.join(format!("{name}.ts"));
    std::fs::write(&file, module(dashboard)).unwrap();
    let out = Command::new("node")
        .arg(dir.join("node_modules/typescript/bin/tsc"))
        .args([
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
        ])
        .arg(&file)
        .current_dir(dir)
        .output()
        .expect("running node");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The checked-in dashboard as Grafana stores it: without the `__requires` (and `__inputs`) of
/// an export for sharing, which Grafana takes off when it imports the file.
fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor/dist/grafana/monitor.json");
    let mut d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let o = d.as_object_mut().unwrap();
    assert!(
        o.contains_key("__requires"),
        "an export for sharing has __requires"
    );
    o.retain(|k, _| !k.starts_with("__"));
    d
}

#[test]
fn the_dashboard_satisfies_grafanas_dashboard_types() {
    let dir = installed();
    let d = dashboard();
    if let Err(e) = check(&dir, "dashboard", &d) {
        panic!(
            "monitor/dist/grafana/monitor.json does not satisfy @grafana/schema's Dashboard:\n{e}"
        );
    }
    // The check is live: a misspelt panel field, a width given as text and a tooltip mode
    // given as a word are each refused.
    let mut bad = d.clone();
    bad["panels"][1]["titel"] = "CPU".into();
    bad["panels"][2]["gridPos"]["w"] = "12".into();
    bad["graphTooltip"] = "shared".into();
    let e = check(&dir, "bad", &bad).expect_err("a broken dashboard passed");
    for want in [
        "titel",
        "is not assignable to type 'number'",
        "DashboardCursorSync",
    ] {
        assert!(e.contains(want), "no error about {want}:\n{e}");
    }
}
