//! Resolve a path inside a container's root filesystem without ever leaving it.
//!
//! Image content is hostile: a mount destination such as `/data` may be a symlink to
//! `../../../etc` placed there by the image author, and a naive `mount(src, rootfs + dest)`
//! would mount over the host's `/etc`. We walk the path one component at a time with
//! `O_PATH|O_NOFOLLOW` file descriptors, so every step is relative to a directory we already
//! hold; symlinks are followed by hand with the container's `/` as root. An absolute symlink is
//! read as the container sees it (inside the rootfs); a relative one that climbs above the
//! rootfs is an error. The result is an `O_PATH` fd: the caller mounts onto
//! `/proc/self/fd/N`, so a later swap of a component for a symlink cannot redirect the mount
//! (the CVE-2021-30465 class).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

use super::error::{Result, RuntimeError};

/// Symlinks followed in one resolution before giving up (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// What to create when the path (or a parent) does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    /// Parents and the last component as directories.
    Dir,
    /// Parents as directories, the last component as an empty file.
    File,
}

fn escape(path: &Path, why: String) -> RuntimeError {
    RuntimeError::InvalidSpec(format!(
        "path {} escapes the container's root filesystem: {why}",
        path.display()
    ))
}

/// Open `path` (as the container sees it) inside `root`, following symlinks within the root.
/// `..` in `path` itself is refused outright: a mount destination has no business climbing.
pub fn resolve_in_root(root: &Path, path: &Path, create: Create) -> Result<OwnedFd> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(escape(path, "it contains '..'".into())),
            Component::Normal(name) => pending.push_back(name.to_os_string()),
            Component::Prefix(_) => return Err(escape(path, "unexpected prefix".into())),
        }
    }
    let root_fd = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys(format!("open root filesystem {}", root.display()), e))?;

    // `stack` holds the directories walked so far below the root, for `..` in symlink targets.
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut symlinks = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if stack.pop().is_none() {
                return Err(escape(path, "a symlink in it points above the root".into()));
            }
            continue;
        }
        if name == "." {
            continue;
        }
        let is_last = pending.is_empty();
        let dir = stack.last().unwrap_or(&root_fd).as_fd();
        let fd = match openat(
            dir,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create != Create::Nothing => {
                create_at(dir, &name, is_last, create).map_err(|e| {
                    RuntimeError::sys(format!("create {} in the container", path.display()), e)
                })?;
                openat(
                    dir,
                    name.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| RuntimeError::sys(format!("open {}", path.display()), e))?
            }
            Err(e) => {
                return Err(RuntimeError::sys(
                    format!("resolve {} in the container", path.display()),
                    e,
                ));
            }
        };
        let stat = fstat(&fd).map_err(|e| RuntimeError::sys("fstat", e))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(RuntimeError::sys(
                    format!("resolve {}", path.display()),
                    Errno::ELOOP,
                ));
            }
            let target = readlinkat(&fd, OsStr::new(""))
                .map_err(|e| RuntimeError::sys(format!("readlink in {}", path.display()), e))?;
            let target = PathBuf::from(target);
            if target.is_absolute() {
                stack.clear();
            }
            let mut parts: Vec<OsString> = target
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some(OsString::from("..")),
                    _ => None,
                })
                .collect();
            while let Some(part) = parts.pop() {
                pending.push_front(part);
            }
            continue;
        }
        if is_last {
            return Ok(fd);
        }
        if kind != SFlag::S_IFDIR {
            return Err(RuntimeError::sys(
                format!(
                    "resolve {}: {} is not a directory",
                    path.display(),
                    name.to_string_lossy()
                ),
                Errno::ENOTDIR,
            ));
        }
        stack.push(fd);
    }
    // The path was the root itself (or resolved back to it).
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => Ok(root_fd),
    }
}

fn create_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    is_last: bool,
    create: Create,
) -> std::result::Result<(), Errno> {
    if is_last && create == Create::File {
        let fd = openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        );
        match fd {
            Ok(_) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The `/proc/self/fd/N` path of an fd, to hand to `mount(2)`.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Is the resolved fd a directory?
pub fn is_dir(fd: &OwnedFd) -> bool {
    fstat(fd)
        .map(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> PathBuf {
        fs::read_link(fd_path(fd)).unwrap()
    }

    #[test]
    fn t10_plain_and_created_paths_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let root_path = fs::canonicalize(root.path()).unwrap();
        let fd = resolve_in_root(&root_path, Path::new("/a/b/c"), Create::Dir).unwrap();
        assert_eq!(real(&fd), root_path.join("a/b/c"));
        let fd = resolve_in_root(&root_path, Path::new("/a/file"), Create::File).unwrap();
        assert!(root_path.join("a/file").is_file());
        assert!(!is_dir(&fd));
        let fd = resolve_in_root(&root_path, Path::new("/"), Create::Nothing).unwrap();
        assert_eq!(real(&fd), root_path);
    }

    #[test]
    fn t10_absolute_symlinks_are_read_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let root_path = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root_path.join("etc")).unwrap();
        symlink("/etc", root_path.join("link")).unwrap();
        let fd = resolve_in_root(&root_path, Path::new("/link/sub"), Create::Dir).unwrap();
        assert_eq!(real(&fd), root_path.join("etc/sub"));
    }

    #[test]
    fn t10_escapes_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let root_path = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root_path.join("d")).unwrap();
        symlink("../../../../etc", root_path.join("d/out")).unwrap();
        symlink("loop", root_path.join("loop")).unwrap();
        let err = resolve_in_root(&root_path, Path::new("/d/out/x"), Create::Dir).unwrap_err();
        assert!(err.to_string().contains("escapes"), "{err}");
        let err = resolve_in_root(&root_path, Path::new("/a/../../x"), Create::Dir).unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
        assert!(resolve_in_root(&root_path, Path::new("/loop"), Create::Dir).is_err());
        // Nothing was created outside (or inside) by the failed attempts.
        assert!(!root_path.join("x").exists());
    }

    #[test]
    fn t10_relative_symlink_within_root_is_followed() {
        let root = tempfile::tempdir().unwrap();
        let root_path = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root_path.join("var/data")).unwrap();
        fs::create_dir_all(root_path.join("srv")).unwrap();
        symlink("../var/data", root_path.join("srv/data")).unwrap();
        let fd = resolve_in_root(&root_path, Path::new("/srv/data"), Create::Nothing).unwrap();
        assert_eq!(real(&fd), root_path.join("var/data"));
    }
}
