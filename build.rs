//! Link the `swarm` binary as a position-dependent executable.
//!
//! Why: every container keeps a helper process (a re-exec of this binary) for its whole
//! life. In a PIE, the dynamic loader must patch every pointer in `.data.rel.ro` at start-up,
//! which turns those pages private and dirty in each helper (≈ 300 KiB per container today,
//! growing with the binary). Linked without PIE, those pages stay clean and shared by all
//! helpers, so a helper costs well under 1 MiB of PSS. The libraries and the stack are still
//! randomised; only the binary's own load address is fixed.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
