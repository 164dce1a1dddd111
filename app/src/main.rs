//! The host application. The HTTP service arrives with its own issue.

fn main() {
    eprintln!("the app is not built yet: see README.md");
    std::process::exit(2);
}
