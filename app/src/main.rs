//! `app`: runs the service (`app` or `app serve`), or inspects plugins
//! (`app plugins list`). See README.md.

fn main() -> std::process::ExitCode {
    app::main_with(Vec::new())
}
