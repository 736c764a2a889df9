//! The p2p wire encoding: what bytes a request or reply is on a libp2p stream.
//!
//! ```text
//!  frame  = u32 big-endian length ‖ body          (length ≤ the stream's limit, checked
//!                                                  before a single body byte is buffered)
//!  body   = format version (1 byte) ‖ bincode     (bincode 2.0.1, `config::standard()`,
//!                                                  with a hard allocation limit)
//! ```
//!
//! This is p2p's own encoding, kept self-contained on purpose: the crate-wide `crate::codec`
//! (persisted state) is written elsewhere and the two can be merged later. Only this file
//! names bincode inside `p2p`.
//!
//! Payloads that p2p carries for the layers above (Raft RPCs, forwarded writes, join tokens)
//! are opaque bytes: p2p never knows their types. They travel as [`ByteBuf`], which bincode
//! copies as one block instead of element by element.
//!
//! [`FrameCodec`] is the `request_response::Codec` for all three request-response protocols;
//! each protocol gets its own instance with its own size limit.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version byte in front of every encoded body. Bump it when the envelope types change
/// incompatibly; a peer then gets [`CodecError::UnsupportedVersion`] instead of garbage.
pub const WIRE_FORMAT_VERSION: u8 = 1;

/// The largest payload any p2p message may carry, whatever the configuration says. It bounds
/// what bincode may allocate for one decoded message, so a lying length field inside a frame
/// cannot make the node allocate more than this.
pub const HARD_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Bytes an envelope adds around its payload (version byte, enum tag, length varints, the
/// error text of a failed reply). A frame may be this much larger than its payload.
pub const ENVELOPE_OVERHEAD: usize = 64 << 10;

/// bincode's allocation limit: the hard payload maximum plus the envelope.
const DECODE_LIMIT: usize = HARD_MAX_MESSAGE_SIZE + ENVELOPE_OVERHEAD;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("empty message: no format version byte")]
    Empty,
    #[error("unsupported wire format version {found} (this node speaks {expected})")]
    UnsupportedVersion { found: u8, expected: u8 },
    #[error("cannot encode message: {0}")]
    Encode(String),
    #[error("cannot decode message: {0}")]
    Decode(String),
    #[error("message has {0} trailing bytes after its body")]
    TrailingBytes(usize),
}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> io::Error {
        let kind = match e {
            CodecError::TooLarge { .. } | CodecError::Encode(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Encodes `value` as version byte + bincode.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![WIRE_FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode_config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes what [`encode`] produced; rejects another version and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: version,
            expected: WIRE_FORMAT_VERSION,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

/// Reads one frame, refusing (before buffering anything) a length above `max`.
pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        let e = CodecError::TooLarge { size: len, max };
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one frame. The body is owned so the future stays `Send` without `Sync` bounds.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    body: Vec<u8>,
    max: usize,
) -> io::Result<()> {
    if body.len() > max || u32::try_from(body.len()).is_err() {
        return Err(CodecError::TooLarge {
            size: body.len(),
            max,
        }
        .into());
    }
    let len = (body.len() as u32).to_be_bytes();
    io.write_all(&len).await?;
    io.write_all(&body).await?;
    io.flush().await
}

/// Opaque bytes that serialise as one byte string (serde's `Vec<u8>` would go element by
/// element, which is slow for a 64 MiB snapshot chunk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteBuf(pub Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// A request on any of the request-response protocols: opaque bytes for the layer above.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireRequest {
    pub payload: ByteBuf,
}

/// A reply: the upper layer's bytes, or why there are none (the handler went away, timed
/// out, refused the join, or produced a reply too large to send).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireReply {
    Ok(ByteBuf),
    Err(String),
}

/// Length-prefixed bincode frames for `request_response`; one instance per protocol, each
/// with its own payload limit.
///
/// request-response only logs a request that fails to *read* (it never reaches the
/// behaviour), so the codec counts those itself in `refused`, shared by the clones that
/// libp2p makes per stream.
pub struct FrameCodec<Req = WireRequest, Resp = WireReply> {
    max_frame: usize,
    refused: Arc<AtomicU64>,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> FrameCodec<Req, Resp> {
    /// A codec whose frames carry payloads of at most `max_payload` bytes, counting the
    /// inbound frames it refuses (oversize, undecodable) in `refused`.
    pub fn new(max_payload: usize, refused: Arc<AtomicU64>) -> Self {
        FrameCodec {
            max_frame: max_payload.saturating_add(ENVELOPE_OVERHEAD),
            refused,
            _types: PhantomData,
        }
    }

    /// The largest frame body this codec reads or writes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    async fn read_message<T, R>(&self, protocol: &StreamProtocol, io: &mut R) -> io::Result<T>
    where
        T: DeserializeOwned,
        R: AsyncRead + Unpin + Send,
    {
        let result = match read_frame(io, self.max_frame).await {
            Ok(body) => decode(&body).map_err(io::Error::from),
            Err(e) => Err(e),
        };
        // A peer hanging up mid-frame is not a refusal; everything else is.
        if let Err(e) = &result
            && e.kind() != io::ErrorKind::UnexpectedEof
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%protocol, "refused an inbound message: {e}");
        }
        result
    }
}

impl<Req, Resp> Clone for FrameCodec<Req, Resp> {
    fn clone(&self) -> Self {
        FrameCodec {
            max_frame: self.max_frame,
            refused: self.refused.clone(),
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> libp2p::request_response::Codec for FrameCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_message(protocol, io).await
    }

    async fn read_response<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_message(protocol, io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Encode before the first await: holding `&Req` across it would need `Req: Sync`.
        let body = encode(&req)?;
        write_frame(io, body, self.max_frame).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = encode(&resp)?;
        write_frame(io, body, self.max_frame).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn request_and_reply_round_trip_with_version_byte() {
        let req = WireRequest {
            payload: ByteBuf(vec![1, 2, 3, 255]),
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(bytes[0], WIRE_FORMAT_VERSION);
        let back: WireRequest = decode(&bytes).unwrap();
        assert_eq!(back.payload.0, vec![1, 2, 3, 255]);

        let reply: WireReply = decode(&encode(&WireReply::Err("no".into())).unwrap()).unwrap();
        assert!(matches!(reply, WireReply::Err(s) if s == "no"));
    }

    #[test]
    fn big_payload_is_one_block() {
        let payload = vec![7u8; 1 << 20];
        let bytes = encode(&WireRequest {
            payload: ByteBuf(payload.clone()),
        })
        .unwrap();
        // version + length varint (5 bytes for 1 MiB) + the bytes themselves
        assert!(bytes.len() <= payload.len() + 8, "{}", bytes.len());
        let back: WireRequest = decode(&bytes).unwrap();
        assert_eq!(back.payload.0, payload);
    }

    #[test]
    fn wrong_version_empty_and_trailing_bytes_are_rejected() {
        let mut bytes = encode(&WireRequest::default_for_test()).unwrap();
        assert_eq!(decode::<WireRequest>(&[]).unwrap_err(), CodecError::Empty);
        bytes[0] = 9;
        assert_eq!(
            decode::<WireRequest>(&bytes).unwrap_err(),
            CodecError::UnsupportedVersion {
                found: 9,
                expected: WIRE_FORMAT_VERSION
            }
        );
        bytes[0] = WIRE_FORMAT_VERSION;
        bytes.push(0);
        assert_eq!(
            decode::<WireRequest>(&bytes).unwrap_err(),
            CodecError::TrailingBytes(1)
        );
    }

    #[test]
    fn a_lying_length_inside_the_body_does_not_allocate_it() {
        // version, then a bincode varint (253 = a u64 follows) claiming u64::MAX bytes.
        let bytes = [
            WIRE_FORMAT_VERSION,
            253,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        assert!(matches!(
            decode::<WireRequest>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn frames_round_trip_and_oversize_is_refused_with_a_clear_error() {
        block_on(async {
            let mut wire = Cursor::new(Vec::new());
            write_frame(&mut wire, vec![5; 100], 100).await.unwrap();
            assert_eq!(&wire.get_ref()[..4], &100u32.to_be_bytes());
            wire.set_position(0);
            assert_eq!(read_frame(&mut wire, 100).await.unwrap(), vec![5; 100]);

            // Reader side: a header announcing more than the limit fails before the body.
            wire.set_position(0);
            let err = read_frame(&mut wire, 99).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(
                err.to_string(),
                "message of 100 bytes exceeds the limit of 99 bytes"
            );

            // Writer side: nothing is written.
            let mut out = Cursor::new(Vec::new());
            let err = write_frame(&mut out, vec![0; 101], 100).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("exceeds the limit"), "{err}");
            assert!(out.get_ref().is_empty());

            // A truncated frame is an I/O error, not a hang or a panic.
            let mut short = Cursor::new(vec![0, 0, 0, 10, 1, 2]);
            assert_eq!(
                read_frame(&mut short, 100).await.unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof
            );
        });
    }

    impl WireRequest {
        fn default_for_test() -> Self {
            WireRequest {
                payload: ByteBuf(vec![1]),
            }
        }
    }
}
