//! The orchestrator's scale simulation at full size: `cargo run --release --example
//! scale_sim [NODES] [REPLICAS]` (default 100 nodes, 10,000 replicas). Prints how fast the
//! leader decides and applies placements; see `swarm::orchestrator::sim`.

use swarm::orchestrator::Defaults;
use swarm::orchestrator::sim::simulate_scale;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let replicas: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let report =
        simulate_scale(nodes, replicas, &Defaults::default()).map_err(anyhow::Error::msg)?;
    println!(
        "{} nodes, {} of {} replicas placed in {:?} ({} passes): {:.0} tasks/s",
        report.nodes,
        report.placed,
        report.replicas,
        report.elapsed,
        report.passes,
        report.tasks_per_second()
    );
    println!(
        "a pass over the settled cluster takes {:?}; {}..{} tasks per node",
        report.settled_pass, report.per_node.0, report.per_node.1
    );
    Ok(())
}
