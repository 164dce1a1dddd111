//! Computes the fingerprint of this SDK build: a plugin exports the one it
//! was compiled against, and the app refuses a plugin whose fingerprint
//! differs from its own before calling any of its Rust code.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    // The engine and the SDK: every source file, in a stable order.
    let mut sources = Vec::new();
    for dir in ["hooks-core/src", "hooks-core/macros/src", "hookspecs/src"] {
        collect(&workspace.join(dir), &mut sources);
    }
    for file in [
        "hooks-core/Cargo.toml",
        "hooks-core/macros/Cargo.toml",
        "hookspecs/Cargo.toml",
    ] {
        sources.push(workspace.join(file));
    }
    sources.sort();
    let sdk = hash_files(&sources);
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    // What else changes the code generated for the SDK: target, features
    // and flags.
    let mut build = DefaultHasher::new();
    for var in ["TARGET", "OPT_LEVEL", "DEBUG", "CARGO_ENCODED_RUSTFLAGS"] {
        std::env::var(var).unwrap_or_default().hash(&mut build);
    }
    let mut features: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CARGO_FEATURE_"))
        .map(|(k, _)| k)
        .collect();
    features.sort();
    features.hash(&mut build);

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("fingerprint.rs");
    std::fs::write(
        &out,
        format!(
            "pub(crate) const RUSTC: &str = {rustc:?};\n\
             pub(crate) const SDK: u64 = {sdk};\n\
             pub(crate) const PROFILE: &str = {profile:?};\n\
             pub(crate) const BUILD: u64 = {};\n",
            build.finish()
        ),
    )
    .unwrap();
    for path in &sources {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // Not Cargo.lock: adding a plugin or a dependency changes it, and
    // rebuilding the SDK for that would break every library built before.
    // Other dependency versions change the symbol names cargo gives this
    // build, which `Fingerprint::build_marker` turns into a load failure.
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
}

fn collect(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, into);
        } else {
            into.push(path);
        }
    }
}

fn hash_files(files: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}
