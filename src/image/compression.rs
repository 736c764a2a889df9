//! Compression of layers and archives, told apart by magic bytes, never by media type or file
//! name: `docker save` writes plain tars whatever the manifest says, registries serve gzip or
//! zstd, and people load `app.tar.gz` as often as `app.tar`.

use std::io::{self, BufRead, Read};

/// What a stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Look at the first bytes without consuming them.
    pub fn detect<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
        // One fill of a fresh `BufReader` reads up to its capacity; a source that hands out
        // fewer than 4 bytes on its first read would be taken as plain (and then fail to parse).
        let buf = reader.fill_buf()?;
        Ok(if buf.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if buf.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        })
    }

    /// The OCI layer media type for a layer stored with this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A decompressing reader that still hands out the stream under it, so the caller can drain
/// (and so hash) whatever the decompressor left unread.
pub enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    /// Detect the compression of `reader` and wrap it.
    pub fn new(mut reader: R) -> io::Result<Decoder<R>> {
        Ok(match Compression::detect(&mut reader)? {
            Compression::None => Decoder::Plain(reader),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(reader)?),
        })
    }

    pub fn compression(&self) -> Compression {
        match self {
            Decoder::Plain(_) => Compression::None,
            Decoder::Gzip(_) => Compression::Gzip,
            Decoder::Zstd(_) => Compression::Zstd,
        }
    }

    /// The compressed stream under the decoder.
    pub fn get_mut(&mut self) -> &mut R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }

    pub fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Write};

    #[test]
    fn t10_compression_is_told_by_magic() {
        let plain = b"hello, layer".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        for (bytes, kind) in [
            (plain.clone(), Compression::None),
            (gz, Compression::Gzip),
            (zst, Compression::Zstd),
        ] {
            let mut d = Decoder::new(BufReader::new(&bytes[..])).unwrap();
            assert_eq!(d.compression(), kind);
            let mut out = Vec::new();
            d.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }
        assert_eq!(
            Decoder::new(BufReader::new(&b""[..]))
                .unwrap()
                .compression(),
            Compression::None
        );
    }
}
