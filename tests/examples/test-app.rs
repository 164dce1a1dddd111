//! The real app with the test plugins linked in (see `e2e_tests::plugins`).

fn main() -> std::process::ExitCode {
    app::main_with(e2e_tests::plugins::all())
}
