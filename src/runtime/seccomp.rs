//! Seccomp: compile the spec's `linux.seccomp` (OCI semantics) into a kernel filter with
//! libseccomp, and Docker's default profile as OCI data.

use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Invalid(String),
}

/// A compiled filter, built in the helper before the container's init is cloned and loaded by
/// the init as the last step before `execve`.
pub struct SeccompFilter {}

impl SeccompFilter {
    pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
        let _ = profile;
        todo!()
    }

    pub fn load(&self) -> Result<(), SeccompError> {
        todo!()
    }
}

/// Docker's default seccomp profile (moby `profiles/seccomp/default.json`) for this host's
/// architecture, as OCI data, given the capabilities the container gets (some rules depend on
/// them, as in Docker).
pub fn docker_default_profile(capabilities: &[oci_spec::runtime::Capability]) -> LinuxSeccomp {
    let _ = capabilities;
    todo!()
}
