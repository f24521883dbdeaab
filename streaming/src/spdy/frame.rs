//! SPDY/3.1 frames: a pure parser and an encoder.
//!
//! Header blocks stay opaque (compressed) bytes here: their compression
//! context belongs to the connection, so decoding them is the job of
//! [`super::compress`]. Keeping this layer free of state makes [`parse`] a
//! plain function over a byte slice, which is what a fuzzer wants.

use thiserror::Error;

/// The protocol version carried in every control frame.
pub const VERSION: u16 = 3;

/// Largest payload a frame can describe (24-bit length field).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (SPDY/3 section 2.6.3).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// SETTINGS ids we act on.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// One SETTINGS entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A SPDY/3.1 frame in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        header_block: Vec<u8>,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        header_block: Vec<u8>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        header_block: Vec<u8>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type this implementation does not know; the spec
    /// says to ignore it, so the connection drops it.
    Unknown {
        frame_type: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

/// A byte sequence that is not a valid SPDY/3 frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("unsupported spdy version {0}")]
    Version(u16),
    #[error("control frame type {frame_type} has invalid length {len}")]
    Length { frame_type: u16, len: usize },
    #[error("settings frame declares {count} entries in {len} bytes")]
    SettingsCount { count: u32, len: usize },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses one frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame, otherwise the
/// frame and the number of bytes it used. Never panics on any input.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let flags = buf[4];
    let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let p = &buf[8..8 + len];
    let used = 8 + len;
    if buf[0] & 0x80 == 0 {
        let stream_id = be32(buf) & 0x7fff_ffff;
        let frame = Frame::Data {
            stream_id,
            flags,
            data: p.to_vec(),
        };
        return Ok(Some((frame, used)));
    }
    let version = u16::from_be_bytes([buf[0], buf[1]]) & 0x7fff;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let frame_type = u16::from_be_bytes([buf[2], buf[3]]);
    let need = |min: usize, exact: bool| -> Result<(), FrameError> {
        if len < min || (exact && len != min) {
            Err(FrameError::Length { frame_type, len })
        } else {
            Ok(())
        }
    };
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            need(10, false)?;
            Frame::SynStream {
                stream_id: be32(p) & 0x7fff_ffff,
                associated_id: be32(&p[4..]) & 0x7fff_ffff,
                priority: p[8] >> 5,
                slot: p[9],
                flags,
                header_block: p[10..].to_vec(),
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            need(4, false)?;
            let stream_id = be32(p) & 0x7fff_ffff;
            let header_block = p[4..].to_vec();
            if frame_type == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags,
                    header_block,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    header_block,
                }
            }
        }
        TYPE_RST_STREAM => {
            need(8, true)?;
            Frame::RstStream {
                stream_id: be32(p) & 0x7fff_ffff,
                status: be32(&p[4..]),
            }
        }
        TYPE_SETTINGS => {
            need(4, false)?;
            let count = be32(p);
            let body = &p[4..];
            if u64::from(count) * 8 != body.len() as u64 {
                return Err(FrameError::SettingsCount { count, len });
            }
            let entries = body
                .chunks_exact(8)
                .map(|e| Setting {
                    flags: e[0],
                    id: (u32::from(e[1]) << 16) | (u32::from(e[2]) << 8) | u32::from(e[3]),
                    value: be32(&e[4..]),
                })
                .collect();
            Frame::Settings { flags, entries }
        }
        TYPE_PING => {
            need(4, true)?;
            Frame::Ping { id: be32(p) }
        }
        TYPE_GOAWAY => {
            need(8, true)?;
            Frame::GoAway {
                last_good_stream_id: be32(p) & 0x7fff_ffff,
                status: be32(&p[4..]),
            }
        }
        TYPE_WINDOW_UPDATE => {
            need(8, true)?;
            Frame::WindowUpdate {
                stream_id: be32(p) & 0x7fff_ffff,
                delta: be32(&p[4..]) & 0x7fff_ffff,
            }
        }
        _ => Frame::Unknown {
            frame_type,
            flags,
            payload: p.to_vec(),
        },
    };
    Ok(Some((frame, used)))
}

fn control_header(out: &mut Vec<u8>, frame_type: u16, flags: u8, len: usize) {
    debug_assert!(len <= MAX_PAYLOAD);
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
}

impl Frame {
    /// Appends the wire form of the frame to `out`.
    ///
    /// Payloads longer than [`MAX_PAYLOAD`] cannot be framed; callers split
    /// data before building frames.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                slot,
                flags,
                header_block,
            } => {
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + header_block.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(associated_id & 0x7fff_ffff).to_be_bytes());
                out.push((priority & 0x7) << 5);
                out.push(*slot);
                out.extend_from_slice(header_block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                header_block,
            } => {
                control_header(out, TYPE_SYN_REPLY, *flags, 4 + header_block.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(header_block);
            }
            Frame::Headers {
                stream_id,
                flags,
                header_block,
            } => {
                control_header(out, TYPE_HEADERS, *flags, 4 + header_block.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(header_block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    out.push(e.flags);
                    out.extend_from_slice(&(e.id & 0x00ff_ffff).to_be_bytes()[1..]);
                    out.extend_from_slice(&e.value.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8);
                out.extend_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            }
            Frame::Unknown {
                frame_type,
                flags,
                payload,
            } => {
                control_header(out, *frame_type, *flags, payload.len());
                out.extend_from_slice(payload);
            }
        }
    }

    /// The wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ping_known_bytes() {
        let bytes = Frame::Ping { id: 7 }.to_bytes();
        assert_eq!(bytes, [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 7]);
        assert_eq!(parse(&bytes).unwrap(), Some((Frame::Ping { id: 7 }, 12)));
    }

    #[test]
    fn data_known_bytes() {
        let f = Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: b"hi".to_vec(),
        };
        let bytes = f.to_bytes();
        assert_eq!(bytes, [0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        assert_eq!(parse(&bytes).unwrap(), Some((f, 10)));
    }

    #[test]
    fn partial_input_waits_for_more() {
        let bytes = Frame::GoAway {
            last_good_stream_id: 3,
            status: 0,
        }
        .to_bytes();
        for n in 0..bytes.len() {
            assert_eq!(parse(&bytes[..n]).unwrap(), None, "prefix of {n} bytes");
        }
    }

    #[test]
    fn wrong_version_and_length_are_errors() {
        let mut bytes = Frame::Ping { id: 1 }.to_bytes();
        bytes[1] = 2;
        assert_eq!(parse(&bytes), Err(FrameError::Version(2)));
        // A RST_STREAM must be exactly 8 bytes long.
        let bad = [0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(matches!(parse(&bad), Err(FrameError::Length { .. })));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let id = 0u32..0x8000_0000;
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            (id.clone(), any::<u8>(), bytes.clone()).prop_map(|(stream_id, flags, data)| {
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                }
            }),
            (
                id.clone(),
                id.clone(),
                0u8..8,
                any::<u8>(),
                any::<u8>(),
                bytes.clone()
            )
                .prop_map(|(stream_id, associated_id, priority, slot, flags, hb)| {
                    Frame::SynStream {
                        stream_id,
                        associated_id,
                        priority,
                        slot,
                        flags,
                        header_block: hb,
                    }
                }),
            (id.clone(), any::<u8>(), bytes.clone()).prop_map(|(stream_id, flags, hb)| {
                Frame::SynReply {
                    stream_id,
                    flags,
                    header_block: hb,
                }
            }),
            (id.clone(), any::<u8>(), bytes.clone()).prop_map(|(stream_id, flags, hb)| {
                Frame::Headers {
                    stream_id,
                    flags,
                    header_block: hb,
                }
            }),
            (id.clone(), any::<u32>())
                .prop_map(|(stream_id, status)| Frame::RstStream { stream_id, status }),
            (
                any::<u8>(),
                proptest::collection::vec((any::<u8>(), 0u32..0x0100_0000, any::<u32>()), 0..5)
            )
                .prop_map(|(flags, e)| Frame::Settings {
                    flags,
                    entries: e
                        .into_iter()
                        .map(|(flags, id, value)| Setting { flags, id, value })
                        .collect(),
                }),
            any::<u32>().prop_map(|id| Frame::Ping { id }),
            (id.clone(), any::<u32>()).prop_map(|(l, status)| Frame::GoAway {
                last_good_stream_id: l,
                status
            }),
            (id.clone(), id.clone())
                .prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
            (10u16..0x7fff, any::<u8>(), bytes).prop_map(|(frame_type, flags, payload)| {
                Frame::Unknown {
                    frame_type,
                    flags,
                    payload,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(frame in arb_frame(), trailing in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut bytes = frame.to_bytes();
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(parse(&bytes).unwrap(), Some((frame, len)));
        }

        /// The fuzz entry point: arbitrary bytes never panic the parser, and
        /// whatever parses re-encodes to an equal frame.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((frame, used))) = parse(&bytes) {
                prop_assert!(used <= bytes.len());
                // Reserved bits are dropped on parse, so encoding what was
                // parsed must parse back to the same frame.
                let again = frame.to_bytes();
                prop_assert_eq!(parse(&again).unwrap(), Some((frame, again.len())));
            }
        }
    }
}
