//! Sets `cfg(no_test_database)` when `TEST_DATABASE_URL` is not set, so
//! that the PostgreSQL variants of the end-to-end tests show as ignored,
//! with the reason, in cargo's normal output (instead of passing without
//! having run).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(no_test_database)");
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    if std::env::var_os("TEST_DATABASE_URL").is_none_or(|url| url.is_empty()) {
        println!("cargo:rustc-cfg=no_test_database");
    }
}
