//! Empty: present so that cargo resolves the `[build-dependencies]`, which
//! pin the features of crates built for the host.
fn main() {}
