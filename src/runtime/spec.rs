//! The default OCI runtime spec: Docker's defaults (capabilities, seccomp profile, masked and
//! read-only paths, mounts, devices, no_new_privs). `swarm runtime spec`, `swarm run` and the
//! node agent all start from this one generator.

use oci_spec::runtime::Spec;

/// What a caller may choose when generating the default spec.
#[derive(Debug, Clone)]
pub struct DefaultSpecOptions {
    /// `process.args`.
    pub args: Vec<String>,
    /// `process.terminal`.
    pub terminal: bool,
    /// `root.path` (relative to the bundle, like runc's `rootfs`).
    pub rootfs: String,
    pub readonly_rootfs: bool,
    pub hostname: String,
}

impl Default for DefaultSpecOptions {
    fn default() -> Self {
        DefaultSpecOptions {
            args: vec!["sh".into()],
            terminal: false,
            rootfs: "rootfs".into(),
            readonly_rootfs: false,
            hostname: "swarm".into(),
        }
    }
}

/// Docker's default spec for a container.
pub fn default_spec(opts: &DefaultSpecOptions) -> Spec {
    let _ = opts;
    todo!()
}
