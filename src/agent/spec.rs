//! From a Docker create request and an image's config to an OCI runtime spec, the way
//! `docker run` builds one: Docker's default spec (runtime::spec) plus the image's
//! entrypoint/cmd/env/workdir/user and the request's overrides and limits.
//!
//! Pure: no I/O. Errors are the user's (HTTP 400) and say what to change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, Mount, MountBuilder,
    Spec,
};

use crate::runtime::spec::{DefaultSpecOptions, default_spec};
use crate::types::container::{ContainerCreateRequest, VolumeOptions};

/// The parts of an image's config a container starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// The image's `HEALTHCHECK`.
    pub healthcheck: Option<crate::types::container::HealthConfig>,
}

/// Files the caller wrote for this container and bind-mounts read-only (as Docker does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

use crate::runtime::process::USER_ANNOTATION;

/// Docker's minimum memory limit.
const MIN_MEMORY: i64 = 6 << 20;
const CPU_PERIOD: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn invalid(message: impl Into<String>) -> SpecError {
    SpecError(message.into())
}

/// A named volume a container mounts: `-v NAME:/dst[:ro]` or a `volume` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Empty: a new anonymous volume (a `volume` mount without a source).
    pub name: String,
    pub target: String,
    pub read_only: bool,
    /// How to create it if it does not exist (mounts only).
    pub options: Option<VolumeOptions>,
}

/// Every volume `request` mounts, checked (names, targets), in order.
pub fn volume_mounts(request: &ContainerCreateRequest) -> Result<Vec<VolumeMount>, SpecError> {
    let host = &request.host_config;
    let mut out = Vec::new();
    for bind in host.binds.as_deref().unwrap_or_default() {
        if let Bind::Volume(v) = parse_bind(bind)? {
            out.push(v);
        }
    }
    for m in host.mounts.as_deref().unwrap_or_default() {
        if m.kind == "volume" {
            check_target(&m.target, "mount")?;
            if !m.source.is_empty() && !crate::types::volume::valid_name(&m.source) {
                return Err(invalid(format!(
                    "invalid mount config: \"{}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                    m.source
                )));
            }
            out.push(VolumeMount {
                name: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
                options: m.volume_options.clone(),
            });
        }
    }
    Ok(out)
}

fn check_target(target: &str, what: &str) -> Result<(), SpecError> {
    if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid {what} target {target:?}: the destination must be an absolute path without '..'"
        )));
    }
    Ok(())
}

/// Build the spec of a container. `volumes` maps the volume names it mounts to their
/// directories (see [`volume_mounts`]); `hostname` is the request's or the caller's default
/// (the short container id, like Docker); `cpus` is the host's CPU count, for `--cpus`.
pub fn container_spec(
    request: &ContainerCreateRequest,
    image: &ImageRunConfig,
    files: &ContainerFiles,
    volumes: &BTreeMap<String, PathBuf>,
    hostname: &str,
    cpus: usize,
) -> Result<Spec, SpecError> {
    let host = &request.host_config;
    if host.privileged {
        return Err(invalid("privileged containers are not supported"));
    }
    let args = command(request, image)?;
    let mut spec = default_spec(&DefaultSpecOptions {
        args,
        terminal: request.tty,
        rootfs: "rootfs".into(),
        readonly_rootfs: host.readonly_rootfs,
        hostname: hostname.to_string(),
    });

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_env(Some(merge_env(
        process.env().as_deref().unwrap_or_default(),
        &image.env,
        request.env.as_deref().unwrap_or_default(),
    )));
    let workdir = if !request.working_dir.is_empty() {
        &request.working_dir
    } else if !image.working_dir.is_empty() {
        &image.working_dir
    } else {
        "/"
    };
    if !workdir.starts_with('/') {
        return Err(invalid(format!(
            "the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )));
    }
    process.set_cwd(workdir.into());
    let user = if request.user.is_empty() {
        &image.user
    } else {
        &request.user
    };
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    match numeric_user(user) {
        Some(Ok((uid, gid))) => {
            let mut u = process.user().clone();
            u.set_uid(uid);
            u.set_gid(gid.unwrap_or(0));
            process.set_user(u);
        }
        Some(Err(e)) => return Err(e),
        None => {
            annotations.insert(USER_ANNOTATION.into(), user.to_string());
        }
    }
    spec.set_process(Some(process));
    if let Some(labels) = &request.labels {
        for (k, v) in labels {
            annotations.insert(k.clone(), v.clone());
        }
    }
    if !annotations.is_empty() {
        spec.set_annotations(Some(annotations));
    }

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (source, dest) in [
        (&files.hosts, "/etc/hosts"),
        (&files.hostname, "/etc/hostname"),
        (&files.resolv_conf, "/etc/resolv.conf"),
    ] {
        mounts.push(bind_mount(
            source,
            dest,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        ));
    }
    let volume_dir = |name: &str| {
        volumes.get(name).ok_or_else(|| {
            invalid(format!(
                "volume {name:?} was not prepared for the container"
            ))
        })
    };
    for bind in host.binds.as_deref().unwrap_or_default() {
        mounts.push(match parse_bind(bind)? {
            Bind::Host(m) => m,
            Bind::Volume(v) => volume_bind(volume_dir(&v.name)?, &v),
        });
    }
    for m in host.mounts.as_deref().unwrap_or_default() {
        let access = if m.read_only { "ro" } else { "rw" };
        match m.kind.as_str() {
            "bind" => {
                check_target(&m.target, "mount")?;
                if !m.source.starts_with('/') {
                    return Err(invalid(format!(
                        "invalid mount config for type \"bind\": the source {:?} must be an absolute host path",
                        m.source
                    )));
                }
                mounts.push(bind_mount(
                    Path::new(&m.source),
                    &m.target,
                    &["rbind", access, "rprivate"],
                ));
            }
            "volume" => {
                let v = VolumeMount {
                    name: m.source.clone(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                    options: None,
                };
                mounts.push(volume_bind(volume_dir(&m.source)?, &v));
            }
            "tmpfs" => {
                let mut options = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if t.size_bytes < 0 {
                        return Err(invalid("invalid tmpfs size: it must not be negative"));
                    }
                    if t.size_bytes > 0 {
                        options.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode > 0 {
                        options.push(format!("mode={:o}", t.mode));
                    }
                }
                if m.read_only {
                    options.push("ro".into());
                }
                mounts.push(tmpfs_mount(&m.target, &options.join(","))?);
            }
            other => {
                return Err(invalid(format!(
                    "invalid mount type {other:?}: expected bind, volume or tmpfs"
                )));
            }
        }
    }
    for (dest, options) in host.tmpfs.iter().flatten() {
        mounts.push(tmpfs_mount(dest, options)?);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut resources = linux.resources().clone().unwrap_or_default();
    if host.memory < 0 {
        return Err(invalid("invalid memory limit: it must not be negative"));
    }
    if host.memory > 0 {
        if host.memory < MIN_MEMORY {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        resources.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(host.memory)
                // No swap beyond the limit, as Docker does when only --memory is given
                // and this host has no swap anyway.
                .swap(host.memory)
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        ));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut cpu_set = false;
    if host.nano_cpus != 0 {
        if host.cpu_quota != 0 || host.cpu_period != 0 {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        let max = cpus as i64 * 1_000_000_000;
        if host.nano_cpus < 10_000_000 || host.nano_cpus > max {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
        cpu = cpu
            .period(CPU_PERIOD)
            .quota(host.nano_cpus * CPU_PERIOD as i64 / 1_000_000_000);
        cpu_set = true;
    } else if host.cpu_quota != 0 || host.cpu_period != 0 {
        if host.cpu_quota < 0 || host.cpu_period < 0 {
            return Err(invalid("CPU quota and period must not be negative"));
        }
        if host.cpu_period != 0 {
            cpu = cpu.period(host.cpu_period as u64);
        }
        if host.cpu_quota != 0 {
            cpu = cpu.quota(host.cpu_quota);
        }
        cpu_set = true;
    }
    if host.cpu_shares != 0 {
        if host.cpu_shares < 0 {
            return Err(invalid("CPU shares must not be negative"));
        }
        cpu = cpu.shares(host.cpu_shares as u64);
        cpu_set = true;
    }
    if !host.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(host.cpuset_cpus.clone());
        cpu_set = true;
    }
    if cpu_set {
        resources.set_cpu(Some(cpu.build().map_err(|e| invalid(e.to_string()))?));
    }
    if let Some(limit) = host.pids_limit.filter(|l| *l > 0) {
        resources.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        ));
    }
    linux.set_resources(Some(resources));

    match host.network_mode.as_str() {
        "" | "none" | "default" | "bridge" => {}
        "host" => {
            let namespaces = linux
                .namespaces()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.typ() != LinuxNamespaceType::Network)
                .collect();
            linux.set_namespaces(Some(namespaces));
        }
        other => {
            return Err(invalid(format!(
                "network mode {other:?} is not supported (none, host)"
            )));
        }
    }
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Docker's rule: a request entrypoint replaces the image's and drops the image's cmd.
fn command(
    request: &ContainerCreateRequest,
    image: &ImageRunConfig,
) -> Result<Vec<String>, SpecError> {
    let (entrypoint, cmd) = match &request.entrypoint {
        Some(entrypoint) => (entrypoint.clone(), request.cmd.clone().unwrap_or_default()),
        None => (
            image.entrypoint.clone(),
            request.cmd.clone().unwrap_or_else(|| image.cmd.clone()),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(invalid("no command specified"));
    }
    Ok(args)
}

/// Default env, then the image's, then the request's; a later `KEY=` replaces an earlier one.
fn merge_env(defaults: &[String], image: &[String], request: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in defaults.iter().chain(image).chain(request) {
        let key = entry.split('=').next().unwrap_or(entry);
        out.retain(|e| e.split('=').next().unwrap_or(e) != key);
        out.push(entry.clone());
    }
    out
}

/// `uid`, `uid:gid` → numbers; a name → None (resolved inside the container).
fn numeric_user(user: &str) -> Option<Result<(u32, Option<u32>), SpecError>> {
    if user.is_empty() {
        return Some(Ok((0, Some(0))));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse::<u32>().ok()?;
    match g {
        None => Some(Ok((uid, None))),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Some(Ok((uid, Some(gid)))),
            // A numeric user with a named group: let the init resolve both.
            Err(_) => None,
        },
    }
}

fn bind_mount(source: &Path, dest: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("static bind mount")
}

fn tmpfs_mount(dest: &str, options: &str) -> Result<Mount, SpecError> {
    if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid tmpfs mount {dest:?}: the destination must be an absolute path without '..'"
        )));
    }
    let mut opts = vec![
        "nosuid".to_string(),
        "nodev".to_string(),
        "noexec".to_string(),
    ];
    opts.extend(
        options
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string),
    );
    MountBuilder::default()
        .destination(dest)
        .typ("tmpfs")
        .source("tmpfs")
        .options(opts)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

fn volume_bind(dir: &Path, volume: &VolumeMount) -> Mount {
    let access = if volume.read_only { "ro" } else { "rw" };
    bind_mount(dir, &volume.target, &["rbind", access, "rprivate"])
}

/// What a `-v` entry is.
enum Bind {
    Host(Mount),
    Volume(VolumeMount),
}

/// `SRC:DST[:ro|rw]` (Docker's `-v`): SRC is an absolute host path or a volume name.
fn parse_bind(bind: &str) -> Result<Bind, SpecError> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (source, dest, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, "rw"),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid(format!("invalid volume specification: '{bind}'"))),
    };
    if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid volume specification: '{bind}': the destination must be an absolute path without '..'"
        )));
    }
    let read_only = match mode {
        "ro" => true,
        "rw" | "" => false,
        other => {
            return Err(invalid(format!(
                "invalid mode '{other}' in '{bind}' (ro or rw)"
            )));
        }
    };
    if source.starts_with('/') {
        let access = if read_only { "ro" } else { "rw" };
        return Ok(Bind::Host(bind_mount(
            Path::new(source),
            dest,
            &["rbind", access, "rprivate"],
        )));
    }
    if !crate::types::volume::valid_name(source) {
        return Err(invalid(format!(
            "create {source}: \"{source}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(Bind::Volume(VolumeMount {
        name: source.to_owned(),
        target: dest.to_owned(),
        read_only,
        options: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> ContainerFiles {
        ContainerFiles {
            hosts: "/run/c/hosts".into(),
            hostname: "/run/c/hostname".into(),
            resolv_conf: "/run/c/resolv.conf".into(),
        }
    }

    fn image() -> ImageRunConfig {
        ImageRunConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "A=image".into()],
            working_dir: "/srv".into(),
            user: String::new(),
            healthcheck: None,
        }
    }

    fn build(request: &ContainerCreateRequest) -> Result<Spec, SpecError> {
        container_spec(request, &image(), &files(), &no_volumes(), "abc123", 2)
    }

    fn no_volumes() -> BTreeMap<String, PathBuf> {
        BTreeMap::new()
    }

    fn args(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().args().clone().unwrap()
    }

    #[test]
    fn t10_entrypoint_and_cmd_follow_dockers_rules() {
        let req = ContainerCreateRequest::default();
        assert_eq!(args(&build(&req).unwrap()), vec!["sh"]);
        let req = ContainerCreateRequest {
            cmd: Some(vec!["echo".into(), "hi".into()]),
            ..Default::default()
        };
        assert_eq!(args(&build(&req).unwrap()), vec!["echo", "hi"]);
        let mut with_entry = image();
        with_entry.entrypoint = vec!["/init".into()];
        let spec = container_spec(
            &ContainerCreateRequest::default(),
            &with_entry,
            &files(),
            &no_volumes(),
            "h",
            2,
        )
        .unwrap();
        assert_eq!(args(&spec), vec!["/init", "sh"]);
        // A request entrypoint drops the image's cmd.
        let req = ContainerCreateRequest {
            entrypoint: Some(vec!["true".into()]),
            ..Default::default()
        };
        let spec = container_spec(&req, &with_entry, &files(), &no_volumes(), "h", 2).unwrap();
        assert_eq!(args(&spec), vec!["true"]);
        let mut empty = image();
        empty.cmd.clear();
        let err = container_spec(
            &ContainerCreateRequest::default(),
            &empty,
            &files(),
            &no_volumes(),
            "h",
            2,
        )
        .unwrap_err();
        assert_eq!(err.0, "no command specified");
    }

    #[test]
    fn t10_env_workdir_user_and_hostname() {
        let req = ContainerCreateRequest {
            env: Some(vec!["A=request".into(), "B=2".into()]),
            user: "1000:1000".into(),
            ..Default::default()
        };
        let spec = build(&req).unwrap();
        let p = spec.process().as_ref().unwrap();
        let env = p.env().clone().unwrap();
        assert!(env.contains(&"A=request".into()) && env.contains(&"PATH=/bin".into()));
        assert_eq!(env.iter().filter(|e| e.starts_with("A=")).count(), 1);
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(spec.hostname().as_deref(), Some("abc123"));
        let named = ContainerCreateRequest {
            user: "app".into(),
            ..Default::default()
        };
        let spec = build(&named).unwrap();
        assert_eq!(spec.annotations().as_ref().unwrap()[USER_ANNOTATION], "app");
        let bad = ContainerCreateRequest {
            working_dir: "relative".into(),
            ..Default::default()
        };
        assert!(build(&bad).unwrap_err().0.contains("absolute path"));
    }

    #[test]
    fn t10_limits_become_cgroup_resources() {
        let mut req = ContainerCreateRequest::default();
        req.host_config.memory = 64 << 20;
        req.host_config.nano_cpus = 500_000_000;
        req.host_config.pids_limit = Some(100);
        let spec = build(&req).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(r.cpu().as_ref().unwrap().period(), Some(100_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 100);

        req.host_config.memory = 1 << 20;
        assert_eq!(
            build(&req).unwrap_err().0,
            "Minimum memory limit allowed is 6MB"
        );
        req.host_config.memory = 0;
        req.host_config.nano_cpus = 3_000_000_000;
        assert!(
            build(&req)
                .unwrap_err()
                .0
                .contains("Range of CPUs is from 0.01 to 2.00")
        );
        req.host_config.nano_cpus = 0;
        req.host_config.privileged = true;
        assert!(build(&req).unwrap_err().0.contains("privileged"));
    }

    #[test]
    fn t10_binds_files_and_network_modes() {
        let mut req = ContainerCreateRequest::default();
        req.host_config.binds = Some(vec!["/srv/data:/data:ro".into()]);
        req.host_config.network_mode = "host".into();
        let spec = build(&req).unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let data = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .unwrap();
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(
            mounts
                .iter()
                .any(|m| m.destination() == Path::new("/etc/resolv.conf"))
        );
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(
            namespaces
                .iter()
                .all(|n| n.typ() != LinuxNamespaceType::Network)
        );
        for bad in [
            "../etc:/data",
            "a/b:/data",
            "/a:relative",
            "/a:/b:/c:/d",
            "/a:/b:rx",
            "/a:/../etc",
        ] {
            req.host_config.binds = Some(vec![bad.into()]);
            assert!(build(&req).is_err(), "{bad} accepted");
        }
        req.host_config.binds = None;
        req.host_config.network_mode = "overlay-net".into();
        assert!(build(&req).unwrap_err().0.contains("not supported"));
    }

    #[test]
    fn t10_named_volumes_and_mounts() {
        use crate::types::container::Mount as ApiMount;
        let mut req = ContainerCreateRequest::default();
        req.host_config.binds = Some(vec!["data:/data:ro".into(), "/srv:/srv".into()]);
        req.host_config.mounts = Some(vec![
            ApiMount {
                kind: "volume".into(),
                source: "cache".into(),
                target: "/cache".into(),
                ..Default::default()
            },
            ApiMount {
                kind: "tmpfs".into(),
                target: "/scratch".into(),
                tmpfs_options: Some(crate::types::container::TmpfsOptions {
                    size_bytes: 1 << 20,
                    mode: 0o1777,
                }),
                ..Default::default()
            },
        ]);
        let refs = volume_mounts(&req).unwrap();
        let names: Vec<&str> = refs.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["data", "cache"]);
        assert!(refs[0].read_only && !refs[1].read_only);
        // Not prepared: refused, not silently skipped.
        assert!(build(&req).unwrap_err().0.contains("not prepared"));
        let volumes = BTreeMap::from([
            ("data".to_owned(), PathBuf::from("/v/data/_data")),
            ("cache".to_owned(), PathBuf::from("/v/cache/_data")),
        ]);
        let spec = container_spec(&req, &image(), &files(), &volumes, "h", 2).unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let at = |dst: &str| {
            mounts
                .iter()
                .find(|m| m.destination() == Path::new(dst))
                .unwrap_or_else(|| panic!("no mount at {dst}"))
                .clone()
        };
        assert_eq!(
            at("/data").source().as_deref(),
            Some(Path::new("/v/data/_data"))
        );
        assert!(
            at("/data")
                .options()
                .as_ref()
                .unwrap()
                .contains(&"ro".to_string())
        );
        assert_eq!(
            at("/cache").source().as_deref(),
            Some(Path::new("/v/cache/_data"))
        );
        assert_eq!(at("/srv").source().as_deref(), Some(Path::new("/srv")));
        let scratch = at("/scratch").options().clone().unwrap();
        assert!(scratch.contains(&"size=1048576".to_string()), "{scratch:?}");
        assert!(scratch.contains(&"mode=1777".to_string()), "{scratch:?}");

        for (kind, source, target) in [
            ("volume", "../x", "/x"),
            ("volume", "ok", "relative"),
            ("bind", "relative", "/x"),
            ("npipe", "", "/x"),
        ] {
            req.host_config.binds = None;
            req.host_config.mounts = Some(vec![ApiMount {
                kind: kind.into(),
                source: source.into(),
                target: target.into(),
                ..Default::default()
            }]);
            let volumes = BTreeMap::from([("ok".to_owned(), PathBuf::from("/v/ok/_data"))]);
            let refused = volume_mounts(&req)
                .err()
                .or_else(|| container_spec(&req, &image(), &files(), &volumes, "h", 2).err());
            assert!(refused.is_some(), "{kind} {source} {target} accepted");
        }
    }
}
