//! The command line: one file per command group.

/// Run the CLI and return the process exit code.
pub fn main() -> i32 {
    0
}
