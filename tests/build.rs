//! Sets `cfg(no_test_database)` when `TEST_DATABASE_URL` is not set, so
//! that the PostgreSQL variants of the end-to-end tests show as ignored,
//! with the reason, in cargo's normal output (instead of passing without
//! having run); and `cfg(no_wasm_target)` when the Rust toolchain lacks the
//! `wasm32-wasip2` target, for the sandboxed plugins' tests.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(no_test_database)");
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    if std::env::var_os("TEST_DATABASE_URL").is_none_or(|url| url.is_empty()) {
        println!("cargo:rustc-cfg=no_test_database");
    }
    println!("cargo:rustc-check-cfg=cfg(no_wasm_target)");
    if !wasm_target_installed() {
        println!("cargo:rustc-cfg=no_wasm_target");
    }
}

/// Whether the compiler has the standard library for `wasm32-wasip2`.
fn wasm_target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    std::process::Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .is_some_and(|dir| std::path::Path::new(&dir).is_dir())
}
