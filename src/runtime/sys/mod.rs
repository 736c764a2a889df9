//! The only place in the crate with `unsafe` code: thin wrappers over the few syscalls that
//! `nix` does not wrap safely. Each wrapper states why it is sound.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// What `clone_process` returned in the calling process.
pub enum CloneResult {
    /// In the parent: the child's pid and a pidfd referring to it.
    Parent { pid: i32, pidfd: OwnedFd },
    /// In the child.
    Child,
}

/// Fork-like `clone3(2)`: the child continues from this call with a copy of the caller's
/// memory, in new namespaces given by `flags` (`CLONE_NEW*`), and the parent gets a pidfd for
/// it (`CLONE_PIDFD`) so it can poll for the child's exit without a SIGCHLD handler.
///
/// Callers must be single-threaded (the shim or the exec helper, both freshly exec'd): after a
/// fork in a multi-threaded process only the calling thread survives and a lock held by another
/// thread (malloc's, say) would never be released in the child.
pub fn clone_process(flags: u64) -> Result<CloneResult, Errno> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size we pass; no stack is given, so the child
    // runs on a copy of the parent's stack exactly like fork(2). The kernel writes the pidfd
    // into `pidfd`, which lives across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(CloneResult::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD the kernel stored a fresh fd we now own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(CloneResult::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

/// `pidfd_open(2)`: a pollable handle on a process we did not clone ourselves (a container
/// found again from its state on disk).
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new, open fd.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// A pidfd registered with tokio's reactor (call from within a tokio runtime): `readable()`
/// resolves once the process has exited, without a thread blocked on it.
pub fn async_pidfd(pidfd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open, moves into the `AsyncFd` (so nothing else closes it while
    // registered), and its `as_raw_fd` returns the same descriptor for its whole life.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
}

/// Mark every fd from `first` up close-on-exec, so that nothing the runtime opened (sockets,
/// the exec fifo, cgroup files) leaks into the container (the CVE-2024-21626 class).
pub fn cloexec_from(first: RawFd) -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only flips flags on fds; it closes nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Make `fd` (a terminal) the controlling terminal of the calling session.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal); the fd is borrowed and open.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Unlock the slave of a pty master and return the slave's number (`/dev/pts/N`).
pub fn unlock_pty(master: BorrowedFd<'_>) -> Result<u32, Errno> {
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer, which is valid for the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } < 0 {
        return Err(Errno::last());
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int through the pointer, valid for the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } < 0 {
        return Err(Errno::last());
    }
    Ok(number)
}

/// Copy the window size of terminal `from` to terminal `to` (for `exec -t` and `run -t`).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: winsize is plain old data; TIOCGWINSZ fills it, TIOCSWINSZ reads it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) < 0 {
            return Err(Errno::last());
        }
        if libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Restore default dispositions for the signals the Rust runtime or the helper changed
/// (SIGPIPE is ignored by Rust's std at start-up) and unblock every signal, right before the
/// container's process is exec'd: an ignored signal would survive `execve`.
pub fn reset_signals_for_exec() {
    for sig in [
        libc::SIGPIPE,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ] {
        // SAFETY: installing SIG_DFL is always valid and touches no memory of ours.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// Take ownership of a descriptor that SCM_RIGHTS just installed in our fd table.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this fd for us while receiving the message and nothing else
    // in the process knows its number, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: install a compiled BPF program in the
/// calling thread (or process, with TSYNC). Returns the syscall's non-negative result (with
/// TSYNC, a thread id that could not be synchronised). Allocates nothing, so it is fine right
/// before execve in a freshly cloned child.
pub fn seccomp_set_filter(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> std::io::Result<i64> {
    let len = libc::c_ushort::try_from(program.len())
        .map_err(|_| std::io::Error::other("seccomp program longer than 65535 instructions"))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program).
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) reads `prog` and the `len`
    // instructions it points to, both alive for the whole call (borrowed from the caller); the
    // kernel copies the program and keeps no pointer into our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Set a terminal's window size (an attached client resized its terminal).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer, valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Give the heap's free pages back to the kernel (glibc's `malloc_trim`). The helper calls it
/// once the container runs: setting it up (parsing the spec, compiling seccomp) allocates far
/// more than supervising it ever will, and every container keeps a helper.
/// Own descriptor `fd`, inherited across the exec that started this image (the helper's
/// handover). Only for a number this image was handed and nothing in it owns yet; `None`
/// when it is not open.
pub fn adopt_inherited_fd(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number fails with EBADF.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open and, as documented, owned by nothing else here.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Set or clear close-on-exec on descriptor `fd` (a number the caller owns).
pub fn set_cloexec(fd: std::os::fd::RawFd, on: bool) {
    // SAFETY: F_SETFD changes only the descriptor's flags; a stale number fails with EBADF.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 });
    }
}

pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own allocator state; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tunes glibc's allocator for a long-running daemon whose work comes in bursts. Call before
/// any thread is spawned.
///
/// - At most `arenas` arenas. By default every thread that allocates may get an arena of its
///   own (up to 8 per core), and an arena keeps what its thread freed: after a burst of
///   blocking work (200 container starts, each on a blocking-pool thread) the daemon stayed
///   ~50 MiB above its idle size.
/// - A fixed mmap threshold of 128 KiB. glibc raises the threshold (up to 32 MiB) each time a
///   large block is freed, after which large buffers (a list of every container, a snapshot)
///   come from the heap and leave it fragmented; below a fixed threshold they are mapped and
///   go back to the kernel when freed.
/// - A trim threshold of 256 KiB (free memory at the top of a heap beyond that is returned).
pub fn tune_malloc(arenas: i32) {
    // SAFETY: mallopt only sets glibc allocator parameters; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}
