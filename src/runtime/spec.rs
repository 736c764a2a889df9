//! The default OCI runtime spec: Docker's defaults (capabilities, seccomp profile, masked and
//! read-only paths, mounts, devices, no_new_privs). `swarm runtime spec`, `swarm run` and the
//! node agent all start from this one generator.
//!
//! Sources: moby `daemon/pkg/oci/defaults.go` (mounts, masked/read-only paths, devices, caps),
//! runc's built-in device rules, and the choices Docker's daemon makes on top (env, rlimits).
//! Where swarm deliberately differs from Docker, the item says so:
//! - `noNewPrivileges` is on (Docker: only with `--security-opt no-new-privileges`);
//! - no `b *:* m` device rule: containers cannot mknod block devices;
//! - a cgroup namespace is always requested.
//!
//! Everything here is a plain function of its inputs, except two reads of the host that Docker
//! does too: the caller's RLIMIT_NOFILE hard limit and which CPUs have a `thermal_throttle`
//! directory to mask.

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root,
    Spec, User,
};

use super::seccomp::docker_default_profile;

/// The OCI version the generated spec declares.
pub const OCI_VERSION: &str = "1.0.2";

/// `PATH` of a container whose image sets none (moby `defaultUnixPathEnv`).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set, in Docker's order.
pub const DOCKER_DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths the runtime hides (bind-mounts `/dev/null` or an empty read-only tmpfs over) because
/// they leak host information or are dangerous to read (moby's list).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    // GHSA-6fw5-f8r9-fgfm: interrupt counts leak host activity.
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    // GHSA-jq35-85cj-fj4p: RAPL energy counters are a side channel.
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths the runtime remounts read-only (moby's list).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker never raises RLIMIT_NOFILE above this, however high the caller's hard limit.
pub const MAX_NOFILE: u64 = 1_048_576;

/// `/dev/shm` and `/dev` tmpfs size, Docker's default (64 MiB).
const DEV_TMPFS_SIZE: &str = "size=65536k";

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

/// Docker's 14 default capabilities (bounding, effective and permitted sets of a container).
pub fn docker_default_capabilities() -> Vec<Capability> {
    DOCKER_DEFAULT_CAPABILITIES.to_vec()
}

/// Docker's default spec for a container.
pub fn default_spec(opts: &DefaultSpecOptions) -> Spec {
    let caller_hard_nofile =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(_soft, hard)| hard);

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.into())
        .set_process(Some(default_process(opts, caller_hard_nofile)))
        .set_root(Some(root(opts)))
        .set_hostname(Some(opts.hostname.clone()))
        .set_mounts(Some(default_mounts()))
        .set_linux(Some(default_linux()))
        .set_annotations(None)
        .set_hooks(None)
        .set_domainname(None);
    spec
}

fn root(opts: &DefaultSpecOptions) -> Root {
    let mut root = Root::default();
    root.set_path(PathBuf::from(&opts.rootfs))
        .set_readonly(Some(opts.readonly_rootfs));
    root
}

fn default_process(opts: &DefaultSpecOptions, caller_hard_nofile: Option<u64>) -> Process {
    let mut env = vec![DEFAULT_PATH_ENV.to_owned()];
    if opts.terminal {
        env.push("TERM=xterm".into());
    }

    let docker_caps: HashSet<Capability> = DOCKER_DEFAULT_CAPABILITIES.into_iter().collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(docker_caps.clone()))
        .set_effective(Some(docker_caps.clone()))
        .set_permitted(Some(docker_caps))
        // Empty since Docker 20.10 (CVE-2022-24769): file capabilities of an exec'd binary
        // must not be able to pick them up.
        .set_inheritable(Some(HashSet::new()))
        .set_ambient(Some(HashSet::new()));

    let nofile = nofile_limit(caller_hard_nofile);
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build()
        // Every field has a default and the builder validates nothing: it cannot fail.
        .expect("PosixRlimitBuilder has no validation");

    let mut process = Process::default();
    process
        .set_terminal(Some(opts.terminal))
        .set_console_size(None)
        .set_user(User::default())
        .set_args(Some(opts.args.clone()))
        .set_env(Some(env))
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(Some(capabilities))
        .set_rlimits(Some(vec![rlimit]))
        .set_no_new_privileges(Some(true))
        .set_oom_score_adj(None);
    process
}

/// RLIMIT_NOFILE for the container: Docker's 1048576, but never above what the caller may
/// set (an unprivileged or capped caller would otherwise fail at `setrlimit`). `None` when the
/// caller's limit is unknown: then the kernel default, 1024, is the safe choice.
pub fn nofile_limit(caller_hard: Option<u64>) -> u64 {
    match caller_hard {
        Some(hard) => hard.min(MAX_NOFILE),
        None => 1024,
    }
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut mount = Mount::default();
    mount
        .set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_owned()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    mount
}

/// The mounts every container gets, in mount order (parents first).
fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", DEV_TMPFS_SIZE],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev", "relatime"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", DEV_TMPFS_SIZE],
        ),
    ]
}

fn default_linux() -> Linux {
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| {
        let mut namespace = LinuxNamespace::default();
        namespace.set_typ(typ);
        namespace
    })
    .collect();

    let mut resources = LinuxResources::default();
    resources.set_devices(Some(default_device_rules()));

    let mut masked: Vec<String> = MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect();
    masked.extend(thermal_throttle_paths());

    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(masked))
        .set_readonly_paths(Some(
            READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        ))
        // The standard devices (null, zero, tty, ...) are implicit in the OCI spec.
        .set_devices(Some(Vec::new()))
        .set_resources(Some(resources))
        .set_seccomp(Some(docker_default_profile(&DOCKER_DEFAULT_CAPABILITIES)))
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None);
    linux
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_owned()));
    rule
}

/// The device cgroup rules, evaluated in order: deny everything, then allow what moby allows
/// plus runc's built-in list (which runc appends to every container). Kept out on purpose:
/// `b *:* m` (no mknod of block devices) and FUSE (`c 10:229`, denied explicitly as in moby).
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, C};
    let allow_char = |major, minor: Option<i64>| device_rule(true, C, Some(major), minor, "rwm");
    vec![
        device_rule(false, A, None, None, "rwm"),
        // mknod of character devices; opening them still needs an allow rule below.
        device_rule(true, C, None, None, "m"),
        allow_char(1, Some(3)),                            // /dev/null
        allow_char(1, Some(5)),                            // /dev/zero
        allow_char(1, Some(7)),                            // /dev/full
        allow_char(1, Some(8)),                            // /dev/random
        allow_char(1, Some(9)),                            // /dev/urandom
        allow_char(5, Some(0)),                            // /dev/tty
        allow_char(5, Some(1)),                            // /dev/console
        allow_char(5, Some(2)),                            // /dev/ptmx
        allow_char(136, None),                             // /dev/pts/*
        allow_char(10, Some(200)),                         // /dev/net/tun
        device_rule(false, C, Some(10), Some(229), "rwm"), // /dev/fuse
    ]
}

/// moby masks `/sys/devices/system/cpu/cpuN/thermal_throttle` of every possible CPU where it
/// exists (GHSA-6fw5-f8r9-fgfm: throttling counters leak host activity).
fn thermal_throttle_paths() -> Vec<String> {
    let Ok(possible) = std::fs::read_to_string("/sys/devices/system/cpu/possible") else {
        return Vec::new();
    };
    parse_cpu_list(&possible)
        .into_iter()
        .map(|cpu| format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"))
        .filter(|path| std::path::Path::new(path).exists())
        .collect()
}

/// Parses the kernel's CPU list format (`0-3,8,10-11`); malformed parts are ignored, because a
/// missing mask entry is better than no container.
fn parse_cpu_list(list: &str) -> Vec<u32> {
    list.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .flat_map(|part| {
            let range = match part.split_once('-') {
                Some((first, last)) => first.parse().ok().zip(last.parse().ok()),
                None => part.parse().ok().map(|cpu| (cpu, cpu)),
            };
            // An absurd range (garbage in the file) must not allocate billions of paths.
            range
                .filter(|(first, last)| first <= last && last - first < 65_536)
                .map(|(first, last): (u32, u32)| first..=last)
                .into_iter()
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompAction;

    fn spec() -> Spec {
        default_spec(&DefaultSpecOptions::default())
    }

    fn set(caps: &[Capability]) -> HashSet<Capability> {
        caps.iter().copied().collect()
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let spec = spec();
        let json = serde_json::to_string_pretty(&spec).unwrap();
        assert!(json.contains(r#""ociVersion": "1.0.2""#), "{json}");
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn process_is_root_with_docker_capabilities_and_no_new_privs() {
        let spec = default_spec(&DefaultSpecOptions {
            args: vec!["/bin/echo".into(), "hi".into()],
            ..Default::default()
        });
        let process = spec.process().as_ref().unwrap();
        assert_eq!((process.user().uid(), process.user().gid()), (0, 0));
        assert_eq!(
            process.args().as_deref(),
            Some(&["/bin/echo".to_string(), "hi".into()][..])
        );
        assert_eq!(process.cwd(), &PathBuf::from("/"));
        assert_eq!(process.no_new_privileges(), Some(true));
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(
            process.env().as_deref(),
            Some(&[DEFAULT_PATH_ENV.to_string()][..])
        );

        let caps = process.capabilities().as_ref().unwrap();
        let docker = set(&docker_default_capabilities());
        assert_eq!(docker.len(), 14);
        assert_eq!(caps.bounding().as_ref(), Some(&docker));
        assert_eq!(caps.effective().as_ref(), Some(&docker));
        assert_eq!(caps.permitted().as_ref(), Some(&docker));
        assert_eq!(caps.inheritable().as_ref(), Some(&HashSet::new()));
        assert_eq!(caps.ambient().as_ref(), Some(&HashSet::new()));
        for not_default in [
            Capability::SysAdmin,
            Capability::NetAdmin,
            Capability::SysPtrace,
        ] {
            assert!(!docker.contains(&not_default), "{not_default:?}");
        }
    }

    #[test]
    fn terminal_adds_term() {
        let spec = default_spec(&DefaultSpecOptions {
            terminal: true,
            ..Default::default()
        });
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        let env = process.env().as_ref().unwrap();
        assert!(env.contains(&"TERM=xterm".to_string()), "{env:?}");
    }

    #[test]
    fn root_and_hostname_come_from_the_options() {
        let spec = default_spec(&DefaultSpecOptions {
            rootfs: "/var/lib/swarm/c1/rootfs".into(),
            readonly_rootfs: true,
            hostname: "web-1".into(),
            ..Default::default()
        });
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), &PathBuf::from("/var/lib/swarm/c1/rootfs"));
        assert_eq!(root.readonly(), Some(true));
        assert_eq!(spec.hostname().as_deref(), Some("web-1"));
    }

    #[test]
    fn nofile_never_exceeds_the_callers_hard_limit() {
        assert_eq!(nofile_limit(Some(20_000)), 20_000);
        assert_eq!(nofile_limit(Some(u64::MAX)), MAX_NOFILE, "RLIM_INFINITY");
        assert_eq!(nofile_limit(Some(2_000_000)), MAX_NOFILE);
        assert_eq!(nofile_limit(None), 1024);

        let (_, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let spec = spec();
        let rlimits = spec.process().as_ref().unwrap().rlimits().as_ref().unwrap();
        assert_eq!(rlimits.len(), 1);
        let nofile = rlimits[0];
        assert_eq!(nofile.typ(), PosixRlimitType::RlimitNofile);
        assert_eq!(nofile.soft(), nofile.hard());
        assert!(nofile.hard() <= hard && nofile.hard() <= MAX_NOFILE);
        assert_eq!(nofile.hard(), hard.min(MAX_NOFILE));
    }

    #[test]
    fn namespaces_are_docker_s_plus_cgroup() {
        let spec = spec();
        let types: HashSet<_> = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|ns| {
                assert!(ns.path().is_none(), "new namespaces, not joined ones");
                ns.typ()
            })
            .collect();
        use LinuxNamespaceType::*;
        assert_eq!(
            types,
            HashSet::from([Pid, Network, Ipc, Uts, Mount, Cgroup])
        );
        assert!(!types.contains(&User));
    }

    #[test]
    fn masked_and_readonly_paths_are_docker_s() {
        let spec = spec();
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().as_ref().unwrap();
        for path in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/interrupts",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
            "/proc/acpi",
            "/proc/scsi",
        ] {
            assert!(masked.iter().any(|m| m == path), "{path} must be masked");
        }
        assert!(
            masked.starts_with(
                &MASKED_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
            )
        );
        for extra in &masked[MASKED_PATHS.len()..] {
            assert!(extra.ends_with("/thermal_throttle"), "{extra}");
        }
        assert_eq!(
            linux.readonly_paths().as_deref(),
            Some(
                &READONLY_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()[..]
            )
        );
        assert!(READONLY_PATHS.contains(&"/proc/sys"));
    }

    #[test]
    fn mounts_are_docker_s() {
        let spec = spec();
        let mounts = spec.mounts().as_ref().unwrap();
        let summary: Vec<(String, String, String)> = mounts
            .iter()
            .map(|m| {
                (
                    m.destination().display().to_string(),
                    m.typ().clone().unwrap(),
                    m.options().as_ref().unwrap().join(","),
                )
            })
            .collect();
        let expected = [
            ("/proc", "proc", "nosuid,noexec,nodev"),
            ("/dev", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"),
            (
                "/dev/pts",
                "devpts",
                "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5",
            ),
            ("/sys", "sysfs", "nosuid,noexec,nodev,ro"),
            (
                "/sys/fs/cgroup",
                "cgroup",
                "ro,nosuid,noexec,nodev,relatime",
            ),
            ("/dev/mqueue", "mqueue", "nosuid,noexec,nodev"),
            (
                "/dev/shm",
                "tmpfs",
                "nosuid,noexec,nodev,mode=1777,size=65536k",
            ),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(d, t, o)| (d.to_string(), t.to_string(), o.to_string()))
            .collect();
        assert_eq!(summary, expected);
    }

    #[test]
    fn devices_deny_all_first_and_never_allow_block_devices() {
        let spec = spec();
        let rules = spec
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        let first = &rules[0];
        assert!(!first.allow() && first.major().is_none() && first.minor().is_none());
        assert_eq!(first.access().as_deref(), Some("rwm"));
        assert!(matches!(first.typ(), None | Some(LinuxDeviceType::A)));

        let allowed = |typ, major, minor| {
            // Last matching rule wins, as in the kernel's device cgroup.
            rules
                .iter()
                .rev()
                .find(|r| {
                    r.typ() == Some(typ)
                        && r.major().is_none_or(|m| m == major)
                        && r.minor().is_none_or(|m| m == minor)
                        && r.access().as_deref() == Some("rwm")
                })
                .is_some_and(|r| r.allow())
        };
        use LinuxDeviceType::{B, C};
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 4),
        ] {
            assert!(allowed(C, major, minor), "c {major}:{minor}");
        }
        assert!(!allowed(C, 10, 229), "fuse");
        assert!(!allowed(C, 1, 1), "/dev/mem");
        assert!(
            !rules.iter().any(|r| r.allow() && r.typ() == Some(B)),
            "no block device rule"
        );
    }

    #[test]
    fn seccomp_is_docker_s_default_profile_for_the_default_capabilities() {
        let spec = spec();
        let seccomp = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(
            seccomp,
            docker_default_profile(&docker_default_capabilities())
        );
        crate::runtime::seccomp::SeccompFilter::compile(&seccomp).unwrap();
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3\n"), [0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2-3,8"), [0, 2, 3, 8]);
        assert_eq!(parse_cpu_list("0"), [0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("x,1,3-2,0-4294967295"), [1]);
    }
}
