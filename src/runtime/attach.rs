//! Attaching to a running container's stdio: the helper serves `<state>/attach.sock`; each
//! client gets the container's output as it is produced and may send input.
//!
//! ```text
//!  helper ──▶ client   Docker's multiplexed frames: [stream (1 stdout, 2 stderr), 0, 0, 0,
//!                      len u32 BE] + bytes (a terminal's output is stream 1)
//!  client ──▶ helper   [kind u8, len u32 BE] + payload: 0 stdin bytes, 1 window size
//!                      (rows u16 BE, cols u16 BE), 2 close stdin
//! ```
//!
//! A client that cannot keep up is dropped after a send timeout rather than stalling the
//! container (whose output would otherwise back up into its pipes).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{Context, Result};

pub const ATTACH_SOCKET: &str = "attach.sock";
/// How long a write to a client may block before the client is dropped.
const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest input frame accepted from a client.
const MAX_INPUT: usize = 1 << 20;

pub const INPUT_STDIN: u8 = 0;
pub const INPUT_RESIZE: u8 = 1;
pub const INPUT_CLOSE_STDIN: u8 = 2;

/// What a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    Resize { rows: u16, cols: u16 },
    CloseStdin,
}

/// Encode one input frame (client side).
pub fn input_frame(input: &Input) -> Vec<u8> {
    let (kind, payload) = match input {
        Input::Stdin(bytes) => (INPUT_STDIN, bytes.clone()),
        Input::Resize { rows, cols } => {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend_from_slice(&cols.to_be_bytes());
            (INPUT_RESIZE, p)
        }
        Input::CloseStdin => (INPUT_CLOSE_STDIN, Vec::new()),
    };
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// One output frame in Docker's multiplexed format.
pub fn output_frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

struct Client {
    stream: UnixStream,
    pending: Vec<u8>,
    /// The client half-closed (or sent everything): it still gets output.
    input_closed: bool,
}

/// The helper's side.
pub struct AttachServer {
    listener: UnixListener,
    clients: Vec<Client>,
}

/// An [`AttachServer`] as raw descriptors, to cross the helper's re-exec (see
/// `shim::Handover`): the listener, and each client with what it sent but was not yet read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachFds {
    pub listener: RawFd,
    pub clients: Vec<ClientFds>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientFds {
    pub fd: RawFd,
    pub pending: Vec<u8>,
    pub input_closed: bool,
}

impl AttachFds {
    /// Every descriptor, listener first.
    pub fn fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener)
            .chain(self.clients.iter().map(|c| c.fd))
            .collect()
    }
}

impl AttachServer {
    /// Listen on `<state_dir>/attach.sock`.
    pub fn bind(state_dir: &Path) -> Result<AttachServer> {
        let path = state_dir.join(ATTACH_SOCKET);
        let (_dir, short) = super::channel::short_socket_path(&path)?;
        let listener =
            UnixListener::bind(&short).context(|| format!("listen on {}", path.display()))?;
        listener
            .set_nonblocking(true)
            .context(|| "attach socket".into())?;
        Ok(AttachServer {
            listener,
            clients: Vec::new(),
        })
    }

    /// The descriptors as they are (still owned by `self`).
    pub fn raw_fds(&self) -> AttachFds {
        AttachFds {
            listener: self.listener.as_raw_fd(),
            clients: self
                .clients
                .iter()
                .map(|c| ClientFds {
                    fd: c.stream.as_raw_fd(),
                    pending: c.pending.clone(),
                    input_closed: c.input_closed,
                })
                .collect(),
        }
    }

    /// Serve again the descriptors another image of this process served (see [`AttachFds`]),
    /// owned now: the listener, and each client with its unread input.
    pub fn from_parts(listener: OwnedFd, clients: Vec<(OwnedFd, ClientFds)>) -> AttachServer {
        AttachServer {
            listener: UnixListener::from(listener),
            clients: clients
                .into_iter()
                .map(|(fd, c)| Client {
                    stream: UnixStream::from(fd),
                    pending: c.pending,
                    input_closed: c.input_closed,
                })
                .collect(),
        }
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The clients that may still send input: (index, fd) to poll.
    pub fn client_fds(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.clients
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.input_closed)
            .map(|(i, c)| (i, c.stream.as_fd()))
            .collect()
    }

    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(false).is_ok()
                && stream.set_write_timeout(Some(CLIENT_SEND_TIMEOUT)).is_ok()
            {
                self.clients.push(Client {
                    stream,
                    pending: Vec::new(),
                    input_closed: false,
                });
            }
        }
    }

    /// Send output to every client, dropping those that fail.
    pub fn broadcast(&mut self, stream: u8, bytes: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let frame = output_frame(stream, bytes);
        self.clients
            .retain_mut(|c| c.stream.write_all(&frame).is_ok());
    }

    /// Read what client `index` sent (it is readable). Returns its inputs, or `None` when it
    /// failed (and is dropped). A client that half-closes keeps receiving output; its end of
    /// input closes the container's stdin, as Docker's `StdinOnce` does.
    pub fn read_client(&mut self, index: usize) -> Option<Vec<Input>> {
        let client = self.clients.get_mut(index)?;
        let mut buf = [0u8; 16 * 1024];
        // The socket is blocking, but poll said it is readable: one read does not block.
        match client.stream.read(&mut buf) {
            Ok(0) => {
                client.input_closed = true;
                return Some(vec![Input::CloseStdin]);
            }
            Err(_) => {
                self.clients.remove(index);
                return None;
            }
            Ok(n) => client.pending.extend_from_slice(&buf[..n]),
        }
        let mut inputs = Vec::new();
        while client.pending.len() >= 5 {
            let kind = client.pending[0];
            let len = u32::from_be_bytes([
                client.pending[1],
                client.pending[2],
                client.pending[3],
                client.pending[4],
            ]) as usize;
            if len > MAX_INPUT {
                self.clients.remove(index);
                return None;
            }
            if client.pending.len() < 5 + len {
                break;
            }
            let payload: Vec<u8> = client.pending[5..5 + len].to_vec();
            client.pending.drain(..5 + len);
            match kind {
                INPUT_STDIN => inputs.push(Input::Stdin(payload)),
                INPUT_RESIZE if payload.len() == 4 => inputs.push(Input::Resize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                }),
                INPUT_CLOSE_STDIN => inputs.push(Input::CloseStdin),
                _ => {}
            }
        }
        Some(inputs)
    }

    /// The container is gone: every client sees the end of the stream.
    pub fn close_all(&mut self) {
        self.clients.clear();
    }
}

/// The client's side: connect to a container's attach socket.
pub fn connect(state_dir: &Path) -> Result<UnixStream> {
    let path = state_dir.join(ATTACH_SOCKET);
    let (_dir, short) = super::channel::short_socket_path(&path)?;
    UnixStream::connect(&short).context(|| format!("attach to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_frames_round_trip_through_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = AttachServer::bind(dir.path()).unwrap();
        let mut client = connect(dir.path()).unwrap();
        server.accept();
        assert_eq!(server.client_fds().len(), 1);
        client
            .write_all(&input_frame(&Input::Stdin(b"hi\n".to_vec())))
            .unwrap();
        client
            .write_all(&input_frame(&Input::Resize {
                rows: 40,
                cols: 120,
            }))
            .unwrap();
        client.write_all(&input_frame(&Input::CloseStdin)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let inputs = server.read_client(0).unwrap();
        assert_eq!(
            inputs,
            vec![
                Input::Stdin(b"hi\n".to_vec()),
                Input::Resize {
                    rows: 40,
                    cols: 120
                },
                Input::CloseStdin
            ]
        );
        server.broadcast(2, b"err");
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, &output_frame(2, b"err")[..]);
        eprintln!("--- a half-closed client still gets output; its end closes stdin");
        client.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(server.read_client(0), Some(vec![Input::CloseStdin]));
        assert!(server.client_fds().is_empty(), "no longer polled for input");
        server.broadcast(1, b"out");
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, &output_frame(1, b"out")[..]);
        drop(client);
        server.broadcast(1, b"gone");
        server.broadcast(1, b"gone");
        assert_eq!(
            server.clients.len(),
            0,
            "a closed client is dropped on write"
        );
    }
}
