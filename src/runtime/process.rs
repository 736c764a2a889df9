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

/// Annotation carrying a user given by *name* (`user[:group]`, either part may be numeric):
/// the init resolves it against the container's own `/etc/passwd` and `/etc/group` after
/// pivot_root, so a hostile image can only point it at its own files (extension; OCI
/// specs carry numeric ids).
pub const USER_ANNOTATION: &str = "org.swarm.user";

/// Largest passwd or group file read: an image can make them anything (a FIFO, /dev/zero, a
/// gigabyte of lines).
const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// Read a small regular file of the container (after pivot_root), bounded.
fn read_account_file(path: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        // A FIFO must not block us; regular files ignore the flag.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(RuntimeError::io(format!("open {path} in the container"), e)),
    };
    let meta = file.metadata().context(|| format!("stat {path}"))?;
    if !meta.is_file() {
        return Err(RuntimeError::InvalidSpec(format!(
            "{path} in the container is not a regular file"
        )));
    }
    let mut text = String::new();
    file.take(MAX_ACCOUNT_FILE + 1)
        .read_to_string(&mut text)
        .context(|| format!("read {path}"))?;
    if text.len() as u64 > MAX_ACCOUNT_FILE {
        return Err(RuntimeError::InvalidSpec(format!(
            "{path} in the container is larger than {MAX_ACCOUNT_FILE} bytes"
        )));
    }
    Ok(text)
}

/// Resolve `user[:group]` against passwd and group texts: (uid, gid, supplementary gids),
/// like Docker: the user's primary group unless a group is given, plus every group that lists
/// the user.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32, Vec<u32>)> {
    let (user, group_name) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let fields = |line: &str| line.split(':').map(str::to_string).collect::<Vec<_>>();
    let entry = passwd
        .lines()
        .map(fields)
        .find(|f| f.len() >= 4 && (f[0] == user || f[2] == user));
    let (uid, mut gid, name) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().map_err(|_| {
                RuntimeError::InvalidSpec(format!("bad uid for {user} in /etc/passwd"))
            })?,
            f[3].parse().map_err(|_| {
                RuntimeError::InvalidSpec(format!("bad gid for {user} in /etc/passwd"))
            })?,
            f[0].clone(),
        ),
        (None, Ok(uid)) => (uid, 0, String::new()),
        (None, Err(_)) => {
            return Err(RuntimeError::InvalidSpec(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )));
        }
    };
    let groups: Vec<Vec<String>> = group.lines().map(fields).filter(|f| f.len() >= 3).collect();
    if let Some(g) = group_name {
        gid = match groups.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| RuntimeError::InvalidSpec(format!("bad gid for {g} in /etc/group")))?,
            None => g.parse().map_err(|_| {
                RuntimeError::InvalidSpec(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    }
    let mut extra: Vec<u32> = groups
        .iter()
        .filter(|f| !name.is_empty() && f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)))
        .filter_map(|f| f[2].parse().ok())
        .filter(|g| *g != gid)
        .collect();
    extra.sort_unstable();
    extra.dedup();
    Ok((uid, gid, extra))
}

/// The process with the named user of `USER_ANNOTATION` resolved inside the container.
pub fn with_named_user(process: &Process, user: &str) -> Result<Process> {
    let passwd = read_account_file("/etc/passwd")?;
    let group = read_account_file("/etc/group")?;
    let (uid, gid, extra) = resolve_user(user, &passwd, &group)?;
    let mut process = process.clone();
    let mut u = process.user().clone();
    u.set_uid(uid);
    u.set_gid(gid);
    let mut gids = u.additional_gids().clone().unwrap_or_default();
    gids.extend(extra);
    u.set_additional_gids((!gids.is_empty()).then_some(gids));
    process.set_user(u);
    Ok(process)
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
    fn t10_users_resolve_like_docker() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
        let group = "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\nstaff:x:50:app\n";
        assert_eq!(
            resolve_user("app", passwd, group).unwrap(),
            (1000, 1000, vec![10, 50])
        );
        assert_eq!(
            resolve_user("app:wheel", passwd, group).unwrap(),
            (1000, 10, vec![50])
        );
        assert_eq!(
            resolve_user("1000", passwd, group).unwrap(),
            (1000, 1000, vec![10, 50])
        );
        assert_eq!(
            resolve_user("4242:77", passwd, group).unwrap(),
            (4242, 77, vec![])
        );
        let err = resolve_user("nobody-here", passwd, group).unwrap_err();
        assert!(
            err.to_string().contains("unable to find user nobody-here"),
            "{err}"
        );
        assert!(resolve_user("app:nogroup", passwd, group).is_err());
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
