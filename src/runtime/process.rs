//! The container process's identity and limits, applied by init (and by exec) right before
//! `execve`: rlimits, user and groups, capabilities, no_new_privs, umask, working directory.
//! OCI semantics throughout: what the spec omits is not granted (no capabilities, no ambient
//! set, no supplementary groups).

use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};

use super::error::{Context, Result, RuntimeError};

/// Apply `process.rlimits`, never above the caller's hard limit: an unprivileged caller (this
/// host has no CAP_SYS_RESOURCE; RLIMIT_NOFILE is capped at 20000) cannot raise it, so a
/// larger request is lowered to what the host allows rather than failing every container.
pub fn apply_rlimits(process: &Process) -> Result<()> {
    for rlimit in process.rlimits().as_deref().unwrap_or_default() {
        let resource = rlimit_resource(rlimit.typ()).ok_or_else(|| {
            RuntimeError::InvalidSpec(format!("unsupported rlimit {:?}", rlimit.typ()))
        })?;
        let (_, caller_hard) =
            getrlimit(resource).context(|| format!("getrlimit {:?}", rlimit.typ()))?;
        let hard = rlimit.hard().min(caller_hard);
        let soft = rlimit.soft().min(hard);
        setrlimit(resource, soft, hard)
            .context(|| format!("setrlimit {:?} {soft}:{hard}", rlimit.typ()))?;
    }
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> Option<Resource> {
    use PosixRlimitType as T;
    Some(match typ {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

fn cap_set(list: &Option<oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = HashSet::new();
    for cap in list.iter().flatten() {
        let name = format!("CAP_{}", cap.to_string().trim_start_matches("CAP_"));
        let parsed: Capability = name
            .parse()
            .map_err(|_| RuntimeError::InvalidSpec(format!("unknown capability {name}")))?;
        out.insert(parsed);
    }
    Ok(out)
}

/// The capability sets of a spec, parsed once before the clone (so errors surface at create).
#[derive(Debug, Clone, Default)]
pub struct CapabilitySets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl CapabilitySets {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<CapabilitySets> {
        let Some(caps) = caps else {
            return Ok(CapabilitySets::default());
        };
        Ok(CapabilitySets {
            bounding: cap_set(caps.bounding())?,
            effective: cap_set(caps.effective())?,
            permitted: cap_set(caps.permitted())?,
            inheritable: cap_set(caps.inheritable())?,
            ambient: cap_set(caps.ambient())?,
        })
    }
}

/// Become the spec's user with exactly the spec's capabilities.
///
/// Order matters: the bounding set is dropped while we still hold CAP_SETPCAP; KEEPCAPS keeps
/// the permitted set across the uid change; then effective ⊆ permitted is narrowed first, so no
/// intermediate state violates the kernel's subset rules; the ambient set goes last.
pub fn switch_user_and_capabilities(process: &Process, caps: &CapabilitySets) -> Result<()> {
    let all = caps::all();
    for cap in &all {
        if !caps.bounding.contains(cap) {
            match caps::drop(None, CapSet::Bounding, *cap) {
                Ok(()) => {}
                // Capabilities newer than the running kernel do not exist to be dropped.
                Err(_) if !caps::runtime::thread_all_supported().contains(cap) => {}
                Err(e) => {
                    return Err(RuntimeError::Remote(format!(
                        "drop {cap} from the bounding set: {e}"
                    )));
                }
            }
        }
    }

    nix::sys::prctl::set_keepcaps(true).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&gids).context(|| "setgroups".into())?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).context(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).context(|| format!("setuid {}", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;

    let set = |which: CapSet, value: &CapsHashSet| {
        caps::set(None, which, value)
            .map_err(|e| RuntimeError::Remote(format!("set {which:?} capabilities: {e}")))
    };
    let current_effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    set(
        CapSet::Effective,
        &current_effective
            .intersection(&caps.effective)
            .copied()
            .collect(),
    )?;
    set(CapSet::Permitted, &caps.permitted)?;
    set(CapSet::Inheritable, &caps.inheritable)?;
    set(CapSet::Effective, &caps.effective)?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| RuntimeError::Remote(format!("clear ambient capabilities: {e}")))?;
    // The kernel only raises an ambient capability that is also permitted and inheritable.
    // runc's own default spec lists ambient capabilities without inheritable ones, so, like
    // runc, a capability that cannot be raised is skipped (and logged), not fatal.
    for cap in &caps.ambient {
        if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
            tracing::debug!("cannot raise ambient capability {cap}: {e}");
        }
    }
    Ok(())
}

pub fn apply_umask(process: &Process) {
    if let Some(umask) = process.user().umask() {
        nix::sys::stat::umask(Mode::from_bits_truncate(umask));
    }
}

/// The value of `name` in an environment list of `KEY=value` strings.
pub fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Default PATH when the process environment has none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find the program to exec, as the container sees its filesystem (call after pivot_root):
/// a name with a '/' is used as it is, otherwise it is looked up in the spec's PATH.
pub fn find_executable(program: &str, env: &[String]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.is_empty() {
        return Err(RuntimeError::InvalidSpec("process.args is empty".into()));
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        if std::fs::metadata(&path).is_err() {
            return Err(RuntimeError::Remote(format!(
                "exec: {program:?}: no such file or directory"
            )));
        }
        return Ok(path);
    }
    let search = env_value(env, "PATH").unwrap_or(DEFAULT_PATH);
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(RuntimeError::Remote(format!(
        "exec: {program:?}: executable file not found in $PATH"
    )))
}

/// argv and envp as C strings, checked for interior NULs before anything is set up.
pub fn c_strings(list: &[String], what: &str) -> Result<Vec<CString>> {
    list.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| {
                RuntimeError::InvalidSpec(format!("{what} contains a NUL byte: {s:?}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_env_lookup_takes_the_last_definition() {
        let env = vec!["PATH=/a".to_string(), "X=1".into(), "PATH=/b".into()];
        assert_eq!(env_value(&env, "PATH"), Some("/b"));
        assert_eq!(env_value(&env, "PAT"), None);
        assert_eq!(env_value(&env, "Y"), None);
    }

    #[test]
    fn t10_executable_lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).unwrap().ends_with("sh"));
        let err = find_executable("no-such-program-xyz", &env).unwrap_err();
        assert!(err.to_string().contains("not found in $PATH"), "{err}");
        assert!(find_executable("/no/such", &env).is_err());
        assert!(find_executable("", &env).is_err());
    }

    #[test]
    fn t10_capability_names_parse_with_or_without_prefix() {
        let caps: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"]}"#,
        )
        .unwrap();
        let sets = CapabilitySets::from_spec(Some(&caps)).unwrap();
        assert_eq!(sets.bounding.len(), 2);
        assert!(sets.effective.contains(&Capability::CAP_KILL));
        assert!(sets.ambient.is_empty());
    }
}
