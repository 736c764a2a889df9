//! The container's root filesystem and mounts, set up by the container's init inside its own
//! mount namespace (so every mount disappears with the namespace: nothing to clean on the
//! host, nothing leaks if setup fails half way).
//!
//! Order (runc's, for the same reasons):
//! 1. make `/` a recursive slave so nothing we mount propagates back to the host;
//! 2. mount the rootfs: an overlay of image layers with a per-container upper/work dir, or a
//!    bind of a plain directory onto itself (pivot_root needs a mount point);
//! 3. the spec's mounts in order, each destination resolved inside the rootfs
//!    (`resolve::resolve_in_root`) and mounted through its `/proc/self/fd/N` path;
//! 4. pivot_root(".", ".") then a lazy unmount of the old root: no temporary directory needed;
//! 5. (after pivot) devices in a fresh `/dev`, sysctls, read-only and masked paths, and finally
//!    a read-only `/` if asked.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::unistd::{Gid, Uid, chdir, chown, pivot_root};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use serde::{Deserialize, Serialize};

use super::error::{Context, Result, RuntimeError};
use super::resolve::{Create, fd_path, is_dir, resolve_in_root};

/// How the root filesystem is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootfsSource {
    /// A directory used as it is (the OCI bundle's `root.path`).
    Dir(PathBuf),
    /// Image layers (topmost first) under a per-container writable layer, mounted on `target`.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
    },
}

impl RootfsSource {
    /// The directory that becomes the container's `/`.
    pub fn mount_point(&self) -> &Path {
        match self {
            RootfsSource::Dir(dir) => dir,
            RootfsSource::Overlay { target, .. } => target,
        }
    }
}

/// Mount flags and data parsed from OCI mount options.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Propagation changes applied with a separate mount(2) call after the mount.
    pub propagation: MsFlags,
    /// Options the kernel takes as the data string (`mode=755`, `size=64k`, …).
    pub data: Vec<String>,
}

pub fn parse_mount_options(options: &[String]) -> MountOptions {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: Vec::new(),
    };
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                parsed.propagation |= propagation_flags(option).unwrap_or(MsFlags::empty());
                continue;
            }
            _ => {
                parsed.data.push(option.clone());
                continue;
            }
        };
        parsed.flags.insert(set);
        parsed.flags.remove(clear);
    }
    parsed
}

/// `rslave` → MS_SLAVE|MS_REC, and so on.
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Everything up to and including pivot_root. Runs in the container's init, in its new mount
/// namespace, before the process drops privileges.
///
/// `join_cgroup` is called once, before the first cgroup mount: the init may only mount
/// cgroupfs once it is in its cgroup and has its cgroup namespace, but everything else can be
/// mounted while the helper is still moving it into the cgroup (on cgroup v1 that move waits
/// for an RCU grace period, several milliseconds when cold). So cgroup mounts go last, unless
/// another mount lies beneath one of them, in which case the spec's order is kept.
pub fn prepare(
    spec: &Spec,
    source: &RootfsSource,
    mut join_cgroup: impl FnMut() -> Result<()>,
) -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| "make / a recursive slave".into())?;

    let rootfs = source.mount_point();
    match source {
        RootfsSource::Dir(dir) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context(|| format!("bind the root filesystem {}", dir.display()))?;
        }
        RootfsSource::Overlay {
            lower,
            upper,
            work,
            target,
        } => {
            let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
            let data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                upper.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(data.as_str()),
            )
            .context(|| format!("mount the overlay root filesystem on {}", target.display()))?;
        }
    }

    let cgroup_v2 = super::cgroup_mode_is_v2();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let is_cgroup = |m: &Mount| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2"));
    let defer_cgroups = !mounts.iter().any(|m| {
        !is_cgroup(m)
            && mounts
                .iter()
                .filter(|c| is_cgroup(c))
                .any(|c| m.destination().starts_with(c.destination()))
    });
    let mut joined = false;
    for m in mounts {
        if is_cgroup(m) {
            if defer_cgroups {
                continue;
            }
            if !joined {
                join_cgroup()?;
                joined = true;
            }
        }
        mount_one(rootfs, m, cgroup_v2)?;
    }
    if !joined {
        join_cgroup()?;
    }
    if defer_cgroups {
        for m in mounts.iter().filter(|m| is_cgroup(m)) {
            mount_one(rootfs, m, cgroup_v2)?;
        }
    }

    if let Some(propagation) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        let flags = propagation_flags(&propagation).ok_or_else(|| {
            RuntimeError::InvalidSpec(format!("unknown rootfsPropagation {propagation:?}"))
        })?;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context(|| format!("set rootfs propagation {propagation}"))?;
    }

    chdir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    pivot_root(".", ".").context(|| "pivot_root".into())?;
    // The old root is now stacked under "."; make sure unmounting it cannot propagate to the
    // host, then detach it.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| "make the old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).context(|| "detach the old root".into())?;
    chdir("/").context(|| "chdir /".into())?;
    Ok(())
}

fn mount_one(rootfs: &Path, m: &Mount, cgroup_v2: bool) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(RuntimeError::InvalidSpec(format!(
            "mount destination {} is not absolute",
            dest.display()
        )));
    }
    let options = parse_mount_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = options.flags.contains(MsFlags::MS_BIND) || typ == "bind";

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(rootfs, dest, &options, cgroup_v2);
    }

    let source = m.source().clone().unwrap_or_default();
    let create = if is_bind && !source.is_dir() {
        Create::File
    } else {
        Create::Dir
    };
    if is_bind && !source.exists() {
        return Err(RuntimeError::InvalidSpec(format!(
            "bind mount source {} does not exist",
            source.display()
        )));
    }
    let target = resolve_in_root(rootfs, dest, create)?;
    if is_bind && source.is_dir() != is_dir(&target) {
        return Err(RuntimeError::InvalidSpec(format!(
            "bind mount of {} onto {}: one is a directory and the other is not",
            source.display(),
            dest.display()
        )));
    }
    let target_path = fd_path(&target);
    let data = options.data.join(",");
    let data = (!data.is_empty()).then_some(data);

    if is_bind {
        mount(
            Some(&source),
            &target_path,
            None::<&str>,
            MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC),
            None::<&str>,
        )
        .context(|| format!("bind {} on {}", source.display(), dest.display()))?;
        // Flags of a bind mount only take effect through a remount. The target must be
        // resolved again: it is a new mount now.
        let remount_flags = options.flags - MsFlags::MS_BIND - MsFlags::MS_REC;
        if !remount_flags.is_empty() {
            let target = resolve_in_root(rootfs, dest, Create::Nothing)?;
            remount(&fd_path(&target), remount_flags)
                .context(|| format!("remount {} with its options", dest.display()))?;
        }
    } else {
        mount(
            Some(source.as_os_str())
                .filter(|s| !s.is_empty())
                .or(Some(typ.as_ref())),
            &target_path,
            Some(typ),
            options.flags,
            data.as_deref(),
        )
        .context(|| format!("mount {typ} on {}", dest.display()))?;
    }
    if !options.propagation.is_empty() {
        let target = resolve_in_root(rootfs, dest, Create::Nothing)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            options.propagation,
            None::<&str>,
        )
        .context(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping flags the kernel locked on it (a remount that
/// tries to clear a locked nosuid/nodev/noexec fails with EPERM).
fn remount(target: &Path, flags: MsFlags) -> std::result::Result<(), nix::errno::Errno> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(nix::errno::Errno::EPERM) => {
            let current = nix::sys::statvfs::statvfs(target)?;
            let mut locked = MsFlags::empty();
            use nix::sys::statvfs::FsFlags;
            for (fs_flag, ms_flag) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            ] {
                if current.flags().contains(fs_flag) {
                    locked |= ms_flag;
                }
            }
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
        }
        other => other,
    }
}

/// `/sys/fs/cgroup` inside the container. On v2, one cgroup2 mount. On v1, a tmpfs holding one
/// mount per hierarchy; with a cgroup namespace each shows the container's cgroup as its root.
fn mount_cgroup(rootfs: &Path, dest: &Path, options: &MountOptions, v2: bool) -> Result<()> {
    let flags = options.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = resolve_in_root(rootfs, dest, Create::Dir)?;
    if v2 {
        return mount(
            Some("cgroup2"),
            &fd_path(&target),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .context(|| format!("mount cgroup2 on {}", dest.display()));
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .context(|| format!("mount tmpfs on {}", dest.display()))?;
    for (name, opts) in v1_hierarchies()? {
        let sub = dest.join(&name);
        let target = resolve_in_root(rootfs, &sub, Create::Dir)?;
        mount(
            Some("cgroup"),
            &fd_path(&target),
            Some("cgroup"),
            flags,
            Some(opts.as_str()),
        )
        .context(|| format!("mount cgroup {name} on {}", sub.display()))?;
    }
    if options.flags.contains(MsFlags::MS_RDONLY) {
        let target = resolve_in_root(rootfs, dest, Create::Nothing)?;
        remount(
            &fd_path(&target),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )
        .context(|| format!("make {} read-only", dest.display()))?;
    }
    Ok(())
}

/// The v1 hierarchies of the host: (directory name, mount options naming the controllers).
fn v1_hierarchies() -> Result<Vec<(String, String)>> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context(|| "read mountinfo".into())?;
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // ... mount-point options - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split_whitespace();
        if right.next() != Some("cgroup") {
            continue;
        }
        let super_options = right.nth(1).unwrap_or("");
        let mount_point = left.split_whitespace().nth(4).unwrap_or("");
        let Some(name) = Path::new(mount_point).file_name() else {
            continue;
        };
        let controllers: Vec<&str> = super_options
            .split(',')
            .filter(|o| {
                !matches!(
                    *o,
                    "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                )
            })
            .collect();
        if !controllers.is_empty() {
            out.push((name.to_string_lossy().into_owned(), controllers.join(",")));
        }
    }
    Ok(out)
}

/// The devices every container gets (runc's and Docker's default set).
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

/// After pivot_root: populate `/dev`, then sysctls, read-only and masked paths, read-only `/`.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let dev_is_tmpfs = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs"));
    if dev_is_tmpfs {
        for (path, major, minor) in default_devices() {
            make_char_device(Path::new(path), major, minor, 0o666, 0, 0)?;
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            match symlink(target, link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(RuntimeError::io(format!("symlink {link}"), e)),
            }
        }
    }
    for device in linux.devices().as_deref().unwrap_or_default() {
        make_spec_device(device)?;
    }

    if let Some(sysctl) = linux.sysctl() {
        for (key, value) in sysctl {
            if key.contains("..") || key.contains('/') && key.starts_with('/') {
                return Err(RuntimeError::InvalidSpec(format!("invalid sysctl {key:?}")));
            }
            let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
            fs::write(&path, value).context(|| format!("set sysctl {key}={value}"))?;
        }
    }

    for path in linux.readonly_paths().as_deref().unwrap_or_default() {
        make_readonly(Path::new(path))?;
    }
    for path in linux.masked_paths().as_deref().unwrap_or_default() {
        mask(Path::new(path))?;
    }

    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        remount(Path::new("/"), MsFlags::MS_RDONLY).context(|| "make / read-only".into())?;
    }
    Ok(())
}

fn make_char_device(
    path: &Path,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    match mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(RuntimeError::sys(format!("mknod {}", path.display()), e)),
    }
    // mknod is subject to the umask: set the mode the spec asked for.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .context(|| format!("chmod {}", path.display()))?;
    chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .context(|| format!("chown {}", path.display()))
}

fn make_spec_device(device: &LinuxDevice) -> Result<()> {
    let path = device.path();
    if !path.starts_with("/dev")
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(RuntimeError::InvalidSpec(format!(
            "device path {} must be under /dev",
            path.display()
        )));
    }
    let kind = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RuntimeError::InvalidSpec(format!(
                "device {}: type 'a' is only valid in cgroup rules",
                path.display()
            )));
        }
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).context(|| format!("create {}", parent.display()))?;
    }
    let mode = device.file_mode().unwrap_or(0o666);
    match mknod(
        path,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(device.major() as u64, device.minor() as u64),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(RuntimeError::sys(format!("mknod {}", path.display()), e)),
    }
    chown(
        path,
        Some(Uid::from_raw(device.uid().unwrap_or(0))),
        Some(Gid::from_raw(device.gid().unwrap_or(0))),
    )
    .context(|| format!("chown {}", path.display()))
}

fn make_readonly(path: &Path) -> Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(RuntimeError::sys(
                format!("bind {} read-only", path.display()),
                e,
            ));
        }
    }
    remount(
        path,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
    .context(|| format!("remount {} read-only", path.display()))
}

/// Hide a path: an empty read-only tmpfs over a directory, `/dev/null` over anything else.
/// `/dev/null` is checked to be the real null device first, so an image cannot turn the mask
/// into a bind of something else (the CVE-2025-31133 class).
fn mask(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io(format!("stat {}", path.display()), e)),
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .context(|| format!("mask {}", path.display()))
    } else {
        let null = fs::File::open("/dev/null").context(|| "open /dev/null".into())?;
        let st = nix::sys::stat::fstat(null.as_fd()).context(|| "stat /dev/null".into())?;
        let is_null = st.st_rdev == makedev(1, 3)
            && null
                .metadata()
                .map(|m| m.file_type().is_char_device())
                .unwrap_or(false);
        if !is_null {
            return Err(RuntimeError::InvalidSpec(
                "/dev/null in the container is not the null device".into(),
            ));
        }
        mount(
            Some(&PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&null)
            ))),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context(|| format!("mask {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_mount_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn t10_mount_options_split_into_flags_propagation_and_data() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = opts(&["rbind", "ro", "rslave"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        // A later option undoes an earlier one.
        assert_eq!(opts(&["ro", "rw"]).flags, MsFlags::empty());
    }

    #[test]
    fn t10_propagation_names() {
        assert_eq!(propagation_flags("private"), Some(MsFlags::MS_PRIVATE));
        assert_eq!(propagation_flags("bogus"), None);
    }
}
