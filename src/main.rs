//! Entry point: parse the command line and hand over to `swarm::cli`.

fn main() {
    std::process::exit(swarm::cli::main());
}
