//! Content digests (`sha256:<64 hex>`) and the readers that compute them while data streams
//! through, so nothing is ever read twice to be verified.
//!
//! Only sha256 is accepted: it is what docker, containerd and every registry use, and a blob's
//! file name in the store is its hex digest, so the digest must be something we can check.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{ImageError, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub const PREFIX: &'static str = "sha256:";

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest(format!("{}{}", Self::PREFIX, hex(&hasher.finalize())))
    }

    /// The 64 hex characters: the blob's file name and the snapshot's directory name.
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest as oci-spec's type (always valid: ours is stricter).
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        oci_spec::image::Digest::from_str(&self.0).expect("a sha256 digest is a valid OCI digest")
    }

    /// Read a digest from oci-spec's type; refuses algorithms other than sha256.
    pub fn from_oci(digest: &oci_spec::image::Digest) -> Result<Digest> {
        digest.as_ref().parse()
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Is `s` 64 lowercase hex characters?
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Digest> {
        match s.strip_prefix(Self::PREFIX) {
            Some(hex) if is_hex64(hex) => Ok(Digest(s.to_string())),
            Some(_) => Err(ImageError::invalid_image(
                format!("digest {s:?}"),
                "expected 64 lowercase hex characters after sha256:",
            )),
            None => Err(ImageError::Unsupported(format!(
                "digest {s:?}: only sha256 digests are supported"
            ))),
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = ImageError;
    fn try_from(s: String) -> Result<Digest> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image's id, as docker shows it: the digest of its config blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub Digest);

impl ImageId {
    /// The 12-hex-character form `docker images` prints.
    pub fn short(&self) -> &str {
        &self.0.hex()[..12]
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Counts and hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The reader and the digest of what went through so far (no draining).
    pub fn into_parts(self) -> (R, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }

    /// Read to the end (what a tar parser leaves after its end-of-archive marker still belongs
    /// to the digest), then return the digest and byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Counts and hashes every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Carry an `ImageError` through an `io::Error` (readers can only fail with the latter) …
pub(crate) fn into_io(e: ImageError) -> io::Error {
    io::Error::other(e)
}

/// … and get it back out, or wrap a plain I/O error with `context`.
pub(crate) fn from_io(context: impl FnOnce() -> String, e: io::Error) -> ImageError {
    if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
        if let Some(Ok(image_error)) = e.into_inner().map(|inner| inner.downcast::<ImageError>()) {
            return *image_error;
        }
        return ImageError::io(context(), io::Error::other("an error was lost in transit"));
    }
    ImageError::io(context(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_digest_parses_only_sha256_hex() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
        assert_eq!(ImageId(d).short(), "e3b0c44298fc");
    }

    #[test]
    fn t10_image_errors_survive_an_io_round_trip() {
        let e = from_io(|| "x".into(), into_io(ImageError::limit("entries")));
        assert_eq!(e.to_string(), "layer exceeds limit: entries");
        let e = from_io(|| "read".into(), io::Error::other("boom"));
        assert_eq!(e.to_string(), "read: boom");
    }
}
