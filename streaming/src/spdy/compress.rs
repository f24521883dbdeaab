//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! Each direction of a connection has one zlib stream, primed with the
//! SPDY/3 dictionary and flushed with SYNC_FLUSH after every header block
//! (SPDY/3 section 2.6.10.1), so the compressor and decompressor must see
//! the blocks in wire order.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

/// Upper bound for one decompressed header block, against zip bombs.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Length-prefixed words that open the SPDY/3 dictionary (spec 2.6.10.1).
const DICT_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The unprefixed tail of the SPDY/3 dictionary.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1423);
    for w in DICT_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICT_TAIL.as_bytes());
    d
}

/// A header block that could not be decoded.
#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("header block is not valid zlib data")]
    Zlib(#[source] flate2::DecompressError),
    #[error("header block is larger than {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    #[error("header block is truncated")]
    Truncated,
    #[error("header block is not utf-8")]
    Utf8,
}

/// Ordered header name/value pairs; names are lower-case on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value; a repeated name becomes a NUL-joined multi-value.
    pub fn insert(&mut self, name: &str, value: &str) -> &mut Self {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The uncompressed name/value block (spec 2.6.10).
    pub fn encode_block(&self) -> Vec<u8> {
        // Merge repeated names into one NUL-separated value, as the spec
        // forbids duplicate names.
        let mut merged: Vec<(String, String)> = Vec::new();
        for (n, v) in &self.0 {
            match merged.iter_mut().find(|(m, _)| m == n) {
                Some((_, mv)) => {
                    mv.push('\0');
                    mv.push_str(v);
                }
                None => merged.push((n.clone(), v.clone())),
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(merged.len() as u32).to_be_bytes());
        for (n, v) in merged {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    /// Parses an uncompressed name/value block; multi-values are split.
    pub fn decode_block(mut b: &[u8]) -> Result<Self, HeaderError> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], HeaderError> {
            if b.len() < n {
                return Err(HeaderError::Truncated);
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Ok(h)
        }
        fn len(b: &mut &[u8]) -> Result<usize, HeaderError> {
            let h = take(b, 4)?;
            Ok(u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize)
        }
        let count = len(&mut b)?;
        let mut headers = Headers::new();
        for _ in 0..count {
            let n = len(&mut b)?;
            let name = take(&mut b, n)?;
            let n = len(&mut b)?;
            let value = take(&mut b, n)?;
            let name = std::str::from_utf8(name).map_err(|_| HeaderError::Utf8)?;
            let value = std::str::from_utf8(value).map_err(|_| HeaderError::Utf8)?;
            if name.is_empty() {
                continue;
            }
            for v in value.split('\0') {
                headers.0.push((name.to_ascii_lowercase(), v.to_owned()));
            }
        }
        Ok(headers)
    }
}

/// The sending half: one zlib stream for all header blocks we send.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        Self { z }
    }

    /// Compresses one header block and sync-flushes it.
    pub fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let input = headers.encode_block();
        let mut out = Vec::with_capacity(input.len() + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            // Compressing into a growable Vec cannot fail for a valid stream.
            self.z
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("zlib compression of an in-memory buffer");
            let done = (self.z.total_in() - start) as usize == input.len();
            // The flush is complete once output stopped filling the buffer.
            if done && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

/// The receiving half: one zlib stream for all header blocks we receive.
pub struct HeaderDecompressor {
    z: Decompress,
    dict: Vec<u8>,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
            dict: dictionary(),
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            let before = (self.z.total_in(), self.z.total_out());
            if out.capacity() - out.len() < 64 {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(HeaderError::TooLarge);
                }
                out.reserve(1024);
            }
            match self
                .z
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&self.dict)
                        .map_err(HeaderError::Zlib)?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Zlib(e)),
            }
            let consumed = (self.z.total_in() - start) as usize;
            if consumed == block.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(HeaderError::TooLarge);
            }
            if before == (self.z.total_in(), self.z.total_out()) {
                // No progress with input left: the zlib stream ended early.
                return Err(HeaderError::Truncated);
            }
        }
        Headers::decode_block(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_matches_spec_size_and_edges() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[test]
    fn block_known_bytes() {
        let mut h = Headers::new();
        h.insert("streamType", "error");
        let b = h.encode_block();
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 10];
        want.extend_from_slice(b"streamtype");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"error");
        assert_eq!(b, want);
        assert_eq!(Headers::decode_block(&b).unwrap(), h);
    }

    #[test]
    fn multi_values_round_trip() {
        let mut h = Headers::new();
        h.insert("x-stream-protocol-version", "v4.channel.k8s.io")
            .insert("x-stream-protocol-version", "v3.channel.k8s.io");
        let b = h.encode_block();
        assert_eq!(&b[..4], &[0, 0, 0, 1]);
        assert_eq!(Headers::decode_block(&b).unwrap(), h);
    }

    #[test]
    fn shared_context_across_blocks() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        for i in 0..20 {
            let mut h = Headers::new();
            h.insert("streamtype", "data")
                .insert("port", &format!("{}", 8000 + i))
                .insert("requestid", &i.to_string());
            let z = c.compress(&h);
            // The first block starts a zlib stream that names a preset
            // dictionary (FDICT bit in the header).
            if i == 0 {
                assert_eq!(z[0] & 0x0f, 8, "deflate method");
                assert_ne!(z[1] & 0x20, 0, "FDICT set");
            }
            assert_eq!(d.decompress(&z).unwrap(), h);
        }
    }

    #[test]
    fn dictionary_adler_is_announced() {
        let mut c = HeaderCompressor::new();
        let z = c.compress(&Headers::new());
        let adler = u32::from_be_bytes([z[2], z[3], z[4], z[5]]);
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for byte in dictionary() {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler, (b << 16) | a);
    }

    proptest::proptest! {
        /// Fuzz entry for the stateful half: any bytes, as any number of
        /// header blocks, never panic the decompressor.
        #[test]
        fn arbitrary_header_blocks_never_panic(
            blocks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128), 1..4),
        ) {
            let mut d = HeaderDecompressor::new();
            for b in blocks {
                let _ = d.decompress(&b);
            }
        }

        #[test]
        fn arbitrary_plain_blocks_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = Headers::decode_block(&b);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = HeaderDecompressor::new();
        assert!(d.decompress(b"\x78\xbb\xff\xff\xff\xff\x00").is_err());
        let mut d = HeaderDecompressor::new();
        assert!(d.decompress(b"not zlib at all").is_err());
    }
}
