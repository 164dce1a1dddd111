//! The real app with the test plugins linked in (see `e2e_tests::plugins`,
//! and `e2e_tests::after_commit` when asked for).

fn main() -> std::process::ExitCode {
    let mut plugins = e2e_tests::plugins::all();
    plugins.extend(e2e_tests::after_commit::plugins());
    app::main_with(plugins)
}
