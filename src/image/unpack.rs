//! Layer extraction: one tar stream into one empty directory, as overlayfs wants a lower layer.
//!
//! Layers are hostile input. We walk the `tar` crate's entry iterator ourselves (never
//! `Archive::unpack`) and do every filesystem operation relative to a directory file
//! descriptor we opened one component at a time with `O_NOFOLLOW`:
//!
//! ```text
//!  entry path ──normalise──▶ [comp, comp, …, name]      `..` refused, leading `/` stripped
//!                               │ open_parent: openat(dir, comp, O_DIRECTORY|O_NOFOLLOW)
//!                               │   missing → mkdirat 0755; symlink or file → refused
//!                               ▼
//!                        parent dirfd ──▶ *at(parent, name, …) with AT_SYMLINK_NOFOLLOW,
//!                                         O_EXCL|O_NOFOLLOW creation, fchmod/fchown on our fd
//! ```
//!
//! So no entry can write, create, chmod, chown or delete outside the directory: a symlink is
//! never followed while extracting (an earlier entry's symlink is replaced, not written
//! through: CVE-2018-20990, RUSTSEC-2021-0080, RUSTSEC-2026-0067), hardlinks may only name an
//! earlier non-directory entry of the same layer, and whiteouts act only on the entry's parent
//! reached the same way. Whiteouts become what overlayfs reads: `.wh.name` a 0:0 character
//! device `name`, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory.
//!
//! Bombs are bounded by `Limits`: uncompressed bytes (counted under the parser, so PAX data,
//! padding and the tail after the end marker count too, and again as bytes written, so sparse
//! files count at their full size), entries, path length and the size of extension headers
//! (the parser reads those into memory).

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, makedev,
    mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{
    Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, mkfifoat, symlinkat, unlinkat,
};
use tar::EntryType;

use super::Limits;
use super::digest::{from_io, into_io};
use super::error::{Context, ImageError, Result};

/// The xattr overlayfs reads to hide a lower directory's content.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// aufs bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`): not content, skipped as docker does.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// While the parser reads headers it may also read: the padding of the previous entry (< 1
/// block) and up to four header blocks (GNU long name, long link, PAX, the entry's own).
const HEADER_SLACK: u64 = 5 * 512;

/// What one unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    /// Bytes of the uncompressed stream (what the diff_id covers).
    pub stream_bytes: u64,
}

/// Counters shared by the reader under the parser and the loop over entries.
struct Budget {
    limits: Limits,
    /// Bytes the stream may have in all.
    max_total: u64,
    total: Cell<u64>,
    /// True while the parser looks for the next entry (headers and extension data only).
    in_headers: Cell<bool>,
    header_bytes: Cell<u64>,
}

/// The reader the tar parser reads from: it enforces the byte limits as the bytes go by,
/// before the parser can buffer them.
pub struct Guard<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let b = &self.budget;
        b.total.set(b.total.get() + n as u64);
        if b.total.get() > b.max_total {
            return Err(into_io(ImageError::limit(format!(
                "uncompressed size (more than {} bytes)",
                b.max_total
            ))));
        }
        if b.in_headers.get() {
            b.header_bytes.set(b.header_bytes.get() + n as u64);
            if b.header_bytes.get() > b.limits.pax_header_bytes + HEADER_SLACK {
                return Err(into_io(pax_limit(&b.limits)));
            }
        }
        Ok(n)
    }
}

fn pax_limit(limits: &Limits) -> ImageError {
    ImageError::limit(format!(
        "PAX header size (more than {} bytes)",
        limits.pax_header_bytes
    ))
}

/// Walk the entries of the tar stream `reader` with `each`, bounded: at most `max_total`
/// bytes in the stream, `max_entries` entries, `limits.pax_header_bytes` of extension
/// headers per entry. Whatever `each` leaves of an entry's data, and the tail after the
/// end-of-archive blocks, is read here under the same bounds, so a hashing reader under
/// `reader` sees every byte. Returns `reader` and the statistics.
pub fn walk<R: Read>(
    reader: R,
    limits: &Limits,
    max_total: u64,
    max_entries: u64,
    mut each: impl FnMut(&mut tar::Entry<'_, Guard<R>>) -> Result<()>,
) -> Result<(R, UnpackStats)> {
    let budget = Rc::new(Budget {
        limits: *limits,
        max_total,
        total: Cell::new(0),
        in_headers: Cell::new(false),
        header_bytes: Cell::new(0),
    });
    let guard = Guard {
        inner: reader,
        budget: budget.clone(),
    };
    let context = || "read tar stream".to_string();
    let mut archive = tar::Archive::new(guard);
    let mut count = 0u64;
    {
        let mut entries = archive.entries().map_err(|e| from_io(context, e))?;
        loop {
            budget.in_headers.set(true);
            budget.header_bytes.set(0);
            let next = entries.next();
            budget.in_headers.set(false);
            let mut entry = match next {
                None => break,
                Some(entry) => entry.map_err(|e| from_io(context, e))?,
            };
            count += 1;
            if count > max_entries {
                return Err(ImageError::limit(format!(
                    "entries (more than {max_entries})"
                )));
            }
            each(&mut entry)?;
            // Read here, under the byte limit, rather than skipped by the parser inside the
            // header phase.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| from_io(context, e))?;
        }
    }
    let mut guard = archive.into_inner();
    io::copy(&mut guard, &mut io::sink()).map_err(|e| from_io(context, e))?;
    let stats = UnpackStats {
        entries: count,
        stream_bytes: budget.total.get(),
    };
    Ok((guard.inner, stats))
}

/// Extract the tar stream `reader` into `dest`, an empty directory, within `limits`. Reads
/// `reader` to its end and hands it back. On error `dest` holds a partial tree: the caller
/// throws it away.
pub fn unpack<R: Read>(reader: R, dest: &Path, limits: &Limits) -> Result<(R, UnpackStats)> {
    let root = open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("open {}", dest.display()))?;
    let mut extractor = Extractor {
        root,
        limits: *limits,
        written: 0,
        dirs: Vec::new(),
        files: HashSet::new(),
    };
    let (reader, stats) = walk(
        reader,
        limits,
        limits.layer_bytes,
        limits.layer_entries,
        |entry| extractor.entry(entry),
    )?;
    extractor.finish_dirs()?;
    Ok((reader, stats))
}

/// A directory whose mode and times are set once all entries are in (adding children
/// changes a directory's mtime, and a read-only mode would be in the way).
struct DeferredDir {
    path: Vec<OsString>,
    mode: u32,
    mtime: TimeSpec,
}

struct Extractor {
    root: OwnedFd,
    limits: Limits,
    /// Bytes written to files so far (sparse files count at their full size).
    written: u64,
    dirs: Vec<DeferredDir>,
    /// Non-directory entries of this layer: the only things a hardlink may name.
    files: HashSet<Vec<OsString>>,
}

/// An entry's path as components, or an error saying why it is unsafe.
fn normalise(raw: &[u8], limits: &Limits, shown: &str) -> Result<Vec<OsString>> {
    if raw.len() > limits.path_bytes {
        return Err(ImageError::limit(format!(
            "path length (more than {} bytes)",
            limits.path_bytes
        )));
    }
    let mut out = Vec::new();
    // A leading '/' is dropped, as docker and containerd do: a layer is always relative to
    // the root it is unpacked into. '..' has no legitimate use in a layer and is refused.
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                return Err(unsafe_entry(shown, "the path contains '..'"));
            }
            name => {
                if name.contains(&0) {
                    return Err(unsafe_entry(shown, "the path contains a NUL byte"));
                }
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
    }
    Ok(out)
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ImageError {
    ImageError::UnsafeEntry {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn display(path: &[OsString]) -> String {
    let joined: PathBuf = path.iter().collect();
    joined.display().to_string()
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// What is at `name` in `dir`, without following a symlink.
fn kind_at(dir: &OwnedFd, name: &OsStr) -> Result<Option<SFlag>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Remove `name` from `dir` and, if it is a directory, everything under it, through fds
/// only (a symlink inside is removed, never followed).
fn remove_tree_at(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match kind_at(dir, name)? {
        None => return Ok(()),
        Some(SFlag::S_IFDIR) => {}
        Some(_) => return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir),
    }
    let child = openat(dir, name, dir_flags(), Mode::empty())?;
    let names: Vec<OsString> = {
        let mut listing = nix::dir::Dir::openat(&child, ".", dir_flags(), Mode::empty())?;
        listing
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect()
    };
    for n in names {
        remove_tree_at(&child, &n)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

fn timespec(mtime: f64) -> TimeSpec {
    let secs = mtime.floor();
    let nanos = ((mtime - secs) * 1e9).round().clamp(0.0, 999_999_999.0);
    TimeSpec::new(secs as i64, nanos as i64)
}

impl Extractor {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let path = normalise(&raw_path, &self.limits, &shown)?;
        let kind = entry.header().entry_type();

        let pax = self.pax_records(entry, &shown)?;
        let mtime = pax
            .iter()
            .find(|(k, _)| k == "mtime")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<f64>().ok())
            .filter(|t| t.is_finite())
            .or_else(|| entry.header().mtime().ok().map(|t| t as f64))
            .map(timespec)
            .unwrap_or(TimeSpec::new(0, 0));
        let header = entry.header();
        let meta = Meta {
            uid: id_u32(header.uid(), &shown, "uid")?,
            gid: id_u32(header.gid(), &shown, "gid")?,
            mode: header
                .mode()
                .map_err(|e| from_io(|| format!("entry {shown}: mode"), e))?
                & 0o7777,
            mtime,
            xattrs: pax
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.strip_prefix("SCHILY.xattr.")?.to_string(), v.clone()))
                })
                .collect(),
        };

        // Whiteouts first: their type is whatever the writer chose (usually an empty file).
        if let Some(name) = path.last().and_then(|n| n.to_str())
            && name.starts_with(WHITEOUT_PREFIX)
        {
            return self.whiteout(&path, name, &shown);
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&path, &shown, entry, &meta)
            }
            EntryType::Directory => self.directory(&path, &shown, &meta),
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&shown, "symlink without a target"))?
                    .into_owned();
                if target.len() > self.limits.path_bytes {
                    return Err(ImageError::limit(format!(
                        "path length (more than {} bytes)",
                        self.limits.path_bytes
                    )));
                }
                self.symlink(&path, &shown, &target, &meta)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&shown, "hardlink without a target"))?
                    .into_owned();
                let target_shown = String::from_utf8_lossy(&target).into_owned();
                let target =
                    normalise(&target, &self.limits, &target_shown).map_err(|e| match e {
                        ImageError::UnsafeEntry { reason, .. } => unsafe_entry(
                            &shown,
                            format!("hardlink target {target_shown:?}: {reason}"),
                        ),
                        other => other,
                    })?;
                self.hardlink(&path, &shown, &target, &target_shown)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let major = header
                    .device_major()
                    .map_err(|e| from_io(|| format!("entry {shown}: device major"), e))?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(|e| from_io(|| format!("entry {shown}: device minor"), e))?
                    .unwrap_or(0);
                self.node(&path, &shown, kind, major, minor, &meta)
            }
            // Global PAX headers carry defaults nobody in the image world relies on; their
            // data is read (bounded) and ignored, as docker does.
            EntryType::XGlobalHeader => {
                if entry.size() > self.limits.pax_header_bytes {
                    return Err(pax_limit(&self.limits));
                }
                Ok(())
            }
            other => Err(unsafe_entry(
                &shown,
                format!("unsupported entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// The entry's PAX records (bounded: the guard already capped the extension's size).
    fn pax_records<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let Some(records) = entry
            .pax_extensions()
            .map_err(|e| from_io(|| format!("entry {shown}: PAX header"), e))?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for record in records {
            let record = record.map_err(|e| from_io(|| format!("entry {shown}: PAX record"), e))?;
            let Ok(key) = record.key() else { continue };
            out.push((key.to_string(), record.value_bytes().to_vec()));
        }
        Ok(out)
    }

    /// Open the directory holding `path`'s last component, creating missing parents (0755,
    /// as docker does) and refusing to pass through anything but a real directory.
    fn open_parent(&self, path: &[OsString], shown: &str, create: bool) -> Result<OwnedFd> {
        let mut dir = self
            .root
            .try_clone()
            .context(|| "duplicate the layer root fd".into())?;
        let parents = &path[..path.len().saturating_sub(1)];
        for (i, component) in parents.iter().enumerate() {
            let step = match openat(&dir, component.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&dir, component.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(ImageError::sys(
                                format!("entry {shown}: create parent {}", display(&path[..=i])),
                                e,
                            ));
                        }
                    }
                    openat(&dir, component.as_os_str(), dir_flags(), Mode::empty()).context(
                        || format!("entry {shown}: open parent {}", display(&path[..=i])),
                    )?
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let what = match kind_at(&dir, component) {
                        Ok(Some(SFlag::S_IFLNK)) => "is a symlink",
                        _ => "is not a directory",
                    };
                    return Err(unsafe_entry(
                        shown,
                        format!("parent {} {what}", display(&path[..=i])),
                    ));
                }
                Err(e) => {
                    return Err(ImageError::sys(
                        format!("entry {shown}: open parent {}", display(&path[..=i])),
                        e,
                    ));
                }
            };
            dir = step;
        }
        Ok(dir)
    }

    /// Make room for a new non-directory at `name`: whatever is there (a symlink, a file, a
    /// whole directory tree) goes, later entries win as in `tar -x`.
    fn clear(&self, parent: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
        remove_tree_at(parent, name).context(|| format!("entry {shown}: replace existing"))
    }

    fn regular<R: Read>(
        &mut self,
        path: &[OsString],
        shown: &str,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<()> {
        let Some(name) = path.last() else {
            return Err(unsafe_entry(shown, "a file entry for the root"));
        };
        let size = entry.size();
        if self.written.saturating_add(size) > self.limits.layer_bytes {
            return Err(ImageError::limit(format!(
                "uncompressed size (more than {} bytes)",
                self.limits.layer_bytes
            )));
        }
        let parent = self.open_parent(path, shown, true)?;
        self.clear(&parent, name, shown)?;
        let fd = openat(
            &parent,
            name.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .context(|| format!("entry {shown}: create file"))?;
        let mut file = std::fs::File::from(fd);
        let copied = io::copy(&mut entry.take(size), &mut file)
            .map_err(|e| from_io(|| format!("entry {shown}: write"), e))?;
        if copied != size {
            return Err(ImageError::io(
                format!("entry {shown}: write"),
                io::Error::new(io::ErrorKind::UnexpectedEof, "layer ended inside a file"),
            ));
        }
        self.written += copied;
        let fd = OwnedFd::from(file);
        fchown(
            &fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .context(|| format!("entry {shown}: chown"))?;
        // After chown: chown clears set-id bits.
        fchmod(&fd, Mode::from_bits_truncate(meta.mode))
            .context(|| format!("entry {shown}: chmod"))?;
        self.set_xattrs_fd(&fd, shown, &meta.xattrs)?;
        futimens(&fd, &meta.mtime, &meta.mtime).context(|| format!("entry {shown}: set times"))?;
        self.files.insert(path.to_vec());
        Ok(())
    }

    fn directory(&mut self, path: &[OsString], shown: &str, meta: &Meta) -> Result<()> {
        let fd = match path.last() {
            // `./` describes the layer root itself.
            None => self
                .root
                .try_clone()
                .context(|| "duplicate the layer root fd".into())?,
            Some(name) => {
                let parent = self.open_parent(path, shown, true)?;
                match kind_at(&parent, name).context(|| format!("entry {shown}: stat"))? {
                    Some(SFlag::S_IFDIR) => {}
                    existing => {
                        // A symlink (or file) of the same name is replaced by a real
                        // directory, never chmod-ed through (RUSTSEC-2026-0067).
                        if existing.is_some() {
                            self.clear(&parent, name, shown)?;
                        }
                        mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o700))
                            .context(|| format!("entry {shown}: mkdir"))?;
                    }
                }
                openat(&parent, name.as_os_str(), dir_flags(), Mode::empty())
                    .context(|| format!("entry {shown}: open directory"))?
            }
        };
        fchown(
            &fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .context(|| format!("entry {shown}: chown"))?;
        self.set_xattrs_fd(&fd, shown, &meta.xattrs)?;
        self.dirs.push(DeferredDir {
            path: path.to_vec(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &[OsString],
        shown: &str,
        target: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let Some(name) = path.last() else {
            return Err(unsafe_entry(shown, "a symlink entry for the root"));
        };
        let parent = self.open_parent(path, shown, true)?;
        self.clear(&parent, name, shown)?;
        // The target is data: it is only ever resolved inside the container's root.
        symlinkat(OsStr::from_bytes(target), &parent, name.as_os_str())
            .context(|| format!("entry {shown}: symlink"))?;
        self.finish_node(&parent, name, shown, meta, true)?;
        self.files.insert(path.to_vec());
        Ok(())
    }

    fn hardlink(
        &mut self,
        path: &[OsString],
        shown: &str,
        target: &[OsString],
        target_shown: &str,
    ) -> Result<()> {
        let Some(name) = path.last() else {
            return Err(unsafe_entry(shown, "a hardlink entry for the root"));
        };
        if !self.files.contains(target) {
            return Err(unsafe_entry(
                shown,
                format!("hardlink target {target_shown:?} is not an earlier file of this layer"),
            ));
        }
        if target == path {
            return Ok(());
        }
        let target_parent = self.open_parent(target, shown, false)?;
        let Some(target_name) = target.last() else {
            return Err(unsafe_entry(shown, "hardlink to the root"));
        };
        match kind_at(&target_parent, target_name)
            .context(|| format!("entry {shown}: stat target"))?
        {
            None | Some(SFlag::S_IFDIR) => {
                return Err(unsafe_entry(
                    shown,
                    format!("hardlink target {target_shown:?} is not a file any more"),
                ));
            }
            Some(_) => {}
        }
        let parent = self.open_parent(path, shown, true)?;
        self.clear(&parent, name, shown)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        linkat(
            &target_parent,
            target_name.as_os_str(),
            &parent,
            name.as_os_str(),
            AtFlags::empty(),
        )
        .context(|| format!("entry {shown}: hardlink to {target_shown}"))?;
        self.files.insert(path.to_vec());
        Ok(())
    }

    fn node(
        &mut self,
        path: &[OsString],
        shown: &str,
        kind: EntryType,
        major: u32,
        minor: u32,
        meta: &Meta,
    ) -> Result<()> {
        let Some(name) = path.last() else {
            return Err(unsafe_entry(shown, "a device entry for the root"));
        };
        let parent = self.open_parent(path, shown, true)?;
        self.clear(&parent, name, shown)?;
        let perm = Mode::from_bits_truncate(0o600);
        match kind {
            EntryType::Fifo => mkfifoat(&parent, name.as_os_str(), perm),
            EntryType::Block => mknodat(
                &parent,
                name.as_os_str(),
                SFlag::S_IFBLK,
                perm,
                makedev(major.into(), minor.into()),
            ),
            _ => mknodat(
                &parent,
                name.as_os_str(),
                SFlag::S_IFCHR,
                perm,
                makedev(major.into(), minor.into()),
            ),
        }
        .context(|| format!("entry {shown}: mknod"))?;
        self.finish_node(&parent, name, shown, meta, false)?;
        self.files.insert(path.to_vec());
        Ok(())
    }

    /// Ownership, mode, xattrs and times of something we cannot hold an fd on (a symlink, a
    /// device, a fifo), by name relative to its parent, never following a symlink.
    fn finish_node(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        shown: &str,
        meta: &Meta,
        is_symlink: bool,
    ) -> Result<()> {
        fchownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .context(|| format!("entry {shown}: chown"))?;
        if !is_symlink {
            fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .context(|| format!("entry {shown}: chmod"))?;
        }
        if !meta.xattrs.is_empty() {
            // lsetxattr through our parent fd: the last component is not followed.
            let at = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
            for (key, value) in meta.xattrs.iter().filter(|(k, _)| xattr_allowed(k)) {
                match rustix::fs::lsetxattr(
                    &at,
                    key.as_str(),
                    value,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    Ok(()) => {}
                    // Linux refuses user.* xattrs on symlinks and devices (EPERM); docker
                    // skips them too.
                    Err(e) if xattr_unsupported(e) || e == rustix::io::Errno::PERM => {
                        tracing::debug!(entry = shown, xattr = key, "xattr not supported here: {e}")
                    }
                    Err(e) => {
                        return Err(ImageError::sys(
                            format!("entry {shown}: set xattr {key}"),
                            Errno::from_raw(e.raw_os_error()),
                        ));
                    }
                }
            }
        }
        utimensat(
            parent,
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .context(|| format!("entry {shown}: set times"))?;
        Ok(())
    }

    fn set_xattrs_fd(&self, fd: &OwnedFd, shown: &str, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
        for (key, value) in xattrs.iter().filter(|(k, _)| xattr_allowed(k)) {
            match rustix::fs::fsetxattr(
                fd.as_fd(),
                key.as_str(),
                value,
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) => {}
                Err(e) if xattr_unsupported(e) => {
                    tracing::debug!(entry = shown, xattr = key, "xattr not supported here: {e}")
                }
                Err(e) => {
                    return Err(ImageError::sys(
                        format!("entry {shown}: set xattr {key}"),
                        Errno::from_raw(e.raw_os_error()),
                    ));
                }
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, path: &[OsString], name: &str, shown: &str) -> Result<()> {
        let parent = self.open_parent(path, shown, true)?;
        if name == OPAQUE_WHITEOUT {
            // The directory's lower content is hidden; this layer's own entries in it stay.
            rustix::fs::fsetxattr(
                parent.as_fd(),
                OPAQUE_XATTR,
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| {
                ImageError::sys(
                    format!("entry {shown}: mark directory opaque"),
                    Errno::from_raw(e.raw_os_error()),
                )
            })?;
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
            return Err(unsafe_entry(shown, format!("whiteout of {hidden:?}")));
        }
        // A whiteout hides lower layers only: a same-named entry of this layer wins.
        if kind_at(&parent, OsStr::new(hidden))
            .context(|| format!("entry {shown}: stat"))?
            .is_some()
        {
            return Ok(());
        }
        mknodat(
            &parent,
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .context(|| format!("entry {shown}: create whiteout"))?;
        Ok(())
    }

    /// Apply the deferred directory modes and times, deepest first. A directory a later entry
    /// replaced is skipped: the walk refuses anything that is no longer a real directory.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.len()));
        for dir in dirs {
            let shown = display(&dir.path);
            let fd = match dir.path.last() {
                None => self
                    .root
                    .try_clone()
                    .context(|| "duplicate the layer root fd".into())?,
                Some(name) => {
                    let Ok(parent) = self.open_parent(&dir.path, &shown, false) else {
                        continue;
                    };
                    match openat(&parent, name.as_os_str(), dir_flags(), Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => continue,
                        Err(e) => return Err(ImageError::sys(format!("entry {shown}: reopen"), e)),
                    }
                }
            };
            fchmod(&fd, Mode::from_bits_truncate(dir.mode))
                .context(|| format!("entry {shown}: chmod"))?;
            futimens(&fd, &dir.mtime, &dir.mtime)
                .context(|| format!("entry {shown}: set times"))?;
        }
        Ok(())
    }
}

/// A uid or gid as the kernel takes it; a larger one would wrap (4294967296 is not root).
fn id_u32(value: io::Result<u64>, shown: &str, what: &str) -> Result<u32> {
    let value = value.map_err(|e| from_io(|| format!("entry {shown}: {what}"), e))?;
    u32::try_from(value)
        .ok()
        .filter(|v| *v != u32::MAX)
        .ok_or_else(|| unsafe_entry(shown, format!("{what} {value} is out of range")))
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Image content may not steer overlayfs: `trusted.overlay.*` (and `user.overlay.*` for
/// userxattr mounts) are ours to set, from whiteouts only.
fn xattr_allowed(key: &str) -> bool {
    !key.starts_with("trusted.overlay.") && !key.starts_with("user.overlay.")
}

fn xattr_unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::OPNOTSUPP
}
