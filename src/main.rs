fn main() {
    // The container helper's second image (see `runtime::shim::reexec_supervisor`) starts
    // here, before the command line parser builds anything: it stays small for the
    // container's whole life.
    let mut args = std::env::args_os().skip(1);
    if let (Some(cmd), Some(flag), Some(state_dir), None) =
        (args.next(), args.next(), args.next(), args.next())
        && cmd == "__shim"
        && flag == swarm::runtime::shim::SUPERVISE_FLAG
    {
        std::process::exit(swarm::runtime::shim::supervisor_main(std::path::Path::new(
            &state_dir,
        )));
    }
    std::process::exit(swarm::cli::main());
}
