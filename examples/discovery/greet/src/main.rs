//! Greets the names given on the command line through every linked plugin.

// Links the plugin crate: rustc leaves out a dependency nothing names, and
// its `linked_plugin!` declarations with it.
use greet_shout as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for line in greet_host::greet_all(&names)? {
        println!("{line}");
    }
    Ok(())
}
