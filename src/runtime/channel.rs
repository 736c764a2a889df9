//! Typed messages between the runtime's processes (creator ⇄ helper ⇄ container init), never
//! raw bytes: each message is a length-prefixed JSON document on a Unix stream socket, and a
//! file descriptor (a pty master) can ride along with SCM_RIGHTS.
//!
//! ```text
//!  creator (CLI or daemon)      helper ("shim", one per container)       container init
//!        │ ── ShimConfig ──────────▶ │                                        │
//!        │                           │ ── InitGo (cgroup joined) ──────────▶  │
//!        │                           │ ◀── InitReady / InitFailed ─────────── │
//!        │ ◀── ShimReport ────────── │                                        │
//! ```

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Context, Result, RuntimeError};

/// Messages are small (a spec is a few KiB); anything larger is a bug or an attack.
const MAX_MESSAGE: u32 = 4 << 20;

/// One end of a message channel.
pub struct Channel {
    stream: UnixStream,
}

impl Channel {
    pub fn new(stream: UnixStream) -> Self {
        Channel { stream }
    }

    /// A connected pair (both ends close-on-exec).
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = UnixStream::pair().context(|| "socketpair".into())?;
        Ok((Channel::new(a), Channel::new(b)))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<()> {
        let body = serde_json::to_vec(message)
            .map_err(|e| RuntimeError::Remote(format!("encode message: {e}")))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .context(|| "send message".into())
    }

    /// The next message, or `None` when the other end closed without sending one.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(RuntimeError::io("receive message", e)),
        }
        let len = u32::from_be_bytes(len);
        if len > MAX_MESSAGE {
            return Err(RuntimeError::Remote(format!(
                "message of {len} bytes exceeds the {MAX_MESSAGE}-byte limit"
            )));
        }
        let mut body = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut body)
            .context(|| "receive message body".into())?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| RuntimeError::Remote(format!("decode message: {e}")))
    }

    /// Send a file descriptor (one byte of payload carries it).
    pub fn send_fd(&self, fd: &OwnedFd) -> Result<()> {
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            self.stream.as_raw_fd(),
            &[IoSlice::new(b"F")],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .context(|| "send file descriptor".into())?;
        Ok(())
    }

    pub fn recv_fd(&self) -> Result<OwnedFd> {
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context(|| "receive file descriptor".into())?;
        for cmsg in msg.cmsgs().context(|| "read control message".into())? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg
                && let Some(&fd) = fds.first()
            {
                return Ok(super::sys::own_received_fd(fd));
            }
        }
        Err(RuntimeError::Remote("no file descriptor in message".into()))
    }
}

/// A path to `path` short enough for a Unix socket address (108 bytes): through an `O_PATH`
/// fd of its directory, `/proc/self/fd/N/name`. State directories named after 64-character
/// container ids under a deep root easily exceed the limit. Keep the fd alive while the path
/// is in use.
pub fn short_socket_path(path: &std::path::Path) -> Result<(OwnedFd, std::path::PathBuf)> {
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let name = path.file_name().ok_or_else(|| {
        RuntimeError::Remote(format!("socket path {} has no name", path.display()))
    })?;
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| format!("open {}", dir.display()))?;
    let short = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
    Ok((fd, short))
}
