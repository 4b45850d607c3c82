//! The pairing exchange's wire format (ALPN [`PAIR_ALPN`]).
//!
//! A viewer that holds a one-time code connects with ALPN `sightline-pair/1` instead of
//! `sightline/1`. On that connection only these messages exist; no session, video or input is
//! reachable. The viewer opens one bidirectional stream and the exchange is:
//!
//! ```text
//! viewer → host   Start   { version, viewer name, SPAKE2 message A }
//! host → viewer   Reply   { host name, SPAKE2 message B, host confirmation MAC }
//!                 (the viewer checks the MAC: a wrong code or an interceptor stops here)
//! viewer → host   Confirm { viewer confirmation MAC }
//! host → viewer   Done    { name the viewer was authorized as }
//! ```
//!
//! The host may answer any message with `Refused` (no pairing window, rate limited, wrong code,
//! busy). The cryptography lives in `sightline_certs::pairing`; this module only frames bytes.
//! Each message is framed as `len: u16` + body and is at most [`MAX_PAIR_MESSAGE_LEN`] bytes.

use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};

/// ALPN of the pairing exchange.
pub const PAIR_ALPN: &[u8] = b"sightline-pair/1";

/// Pairing exchange revision this build speaks.
pub const PAIR_VERSION: u16 = 1;

/// Largest pairing message (after the length prefix).
pub const MAX_PAIR_MESSAGE_LEN: usize = 1024;

/// Longest name in a pairing message.
pub const MAX_PAIR_NAME_LEN: usize = 128;

/// Longest key-exchange message.
pub const MAX_PAIR_KEY_LEN: usize = 128;

/// Longest human-readable refusal.
pub const MAX_PAIR_REASON_LEN: usize = 512;

/// Why the host refused a pairing attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairRefusal {
    /// No pairing window is open (none was opened, it expired, was used or burned).
    NoWindow,
    /// Too many attempts from this address or overall; try again after `retry_after_ms`.
    RateLimited,
    /// The viewer's key confirmation did not match: wrong code (or an interceptor).
    WrongCode,
    /// Another pairing exchange is in progress.
    Busy,
    /// The viewer speaks another pairing revision.
    Version,
    /// The host could not complete pairing (e.g. it could not write its authorized list).
    HostError,
    /// The viewer broke the exchange's rules (malformed or out-of-order messages).
    Protocol,
}

impl PairRefusal {
    fn code(self) -> u8 {
        match self {
            PairRefusal::NoWindow => 1,
            PairRefusal::RateLimited => 2,
            PairRefusal::WrongCode => 3,
            PairRefusal::Busy => 4,
            PairRefusal::Version => 5,
            PairRefusal::HostError => 6,
            PairRefusal::Protocol => 7,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        Ok(match c {
            1 => PairRefusal::NoWindow,
            2 => PairRefusal::RateLimited,
            3 => PairRefusal::WrongCode,
            4 => PairRefusal::Busy,
            5 => PairRefusal::Version,
            6 => PairRefusal::HostError,
            7 => PairRefusal::Protocol,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "pairing refusal",
                    tag: u32::from(tag),
                })
            }
        })
    }

    /// A short machine-readable name (used in audit records).
    pub fn name(self) -> &'static str {
        match self {
            PairRefusal::NoWindow => "no_window",
            PairRefusal::RateLimited => "rate_limited",
            PairRefusal::WrongCode => "wrong_code",
            PairRefusal::Busy => "busy",
            PairRefusal::Version => "version",
            PairRefusal::HostError => "host_error",
            PairRefusal::Protocol => "protocol",
        }
    }
}

/// One message of the pairing exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairMessage {
    /// Viewer → host: start.
    Start {
        /// Pairing revision ([`PAIR_VERSION`]).
        version: u16,
        /// The viewer's name (used for the authorized entry unless the host's operator gave
        /// one).
        viewer_name: String,
        /// SPAKE2 message A.
        key: Vec<u8>,
    },
    /// Host → viewer: its half and its proof.
    Reply {
        /// The host's name.
        host_name: String,
        /// SPAKE2 message B.
        key: Vec<u8>,
        /// HMAC-SHA256 key confirmation.
        confirm: [u8; 32],
    },
    /// Viewer → host: the viewer's proof.
    Confirm {
        /// HMAC-SHA256 key confirmation.
        confirm: [u8; 32],
    },
    /// Host → viewer: paired; the host authorized the viewer.
    Done {
        /// The name in the host's authorized list.
        authorized_as: String,
    },
    /// Host → viewer: no.
    Refused {
        /// Why.
        reason: PairRefusal,
        /// When it makes sense to try again (0: not applicable).
        retry_after_ms: u32,
        /// Details for humans.
        message: String,
    },
}

impl Encode for PairMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            PairMessage::Start {
                version,
                viewer_name,
                key,
            } => {
                out.put_u8(1);
                out.put_u16(*version);
                out.put_str(viewer_name);
                out.put_bytes_u16(key);
            }
            PairMessage::Reply {
                host_name,
                key,
                confirm,
            } => {
                out.put_u8(2);
                out.put_str(host_name);
                out.put_bytes_u16(key);
                out.extend_from_slice(confirm);
            }
            PairMessage::Confirm { confirm } => {
                out.put_u8(3);
                out.extend_from_slice(confirm);
            }
            PairMessage::Done { authorized_as } => {
                out.put_u8(4);
                out.put_str(authorized_as);
            }
            PairMessage::Refused {
                reason,
                retry_after_ms,
                message,
            } => {
                out.put_u8(5);
                out.put_u8(reason.code());
                out.put_u32(*retry_after_ms);
                out.put_str(message);
            }
        }
    }
}

fn mac(r: &mut Reader<'_>) -> Result<[u8; 32], DecodeError> {
    let b = r.take(32, "pairing confirmation")?;
    let mut out = [0u8; 32];
    out.copy_from_slice(b);
    Ok(out)
}

impl Decode for PairMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("pairing message tag")? {
            1 => PairMessage::Start {
                version: r.u16("pairing version")?,
                viewer_name: r.string("viewer name", MAX_PAIR_NAME_LEN)?,
                key: r.bytes_u16("pairing key", MAX_PAIR_KEY_LEN)?.to_vec(),
            },
            2 => PairMessage::Reply {
                host_name: r.string("host name", MAX_PAIR_NAME_LEN)?,
                key: r.bytes_u16("pairing key", MAX_PAIR_KEY_LEN)?.to_vec(),
                confirm: mac(r)?,
            },
            3 => PairMessage::Confirm { confirm: mac(r)? },
            4 => PairMessage::Done {
                authorized_as: r.string("authorized name", MAX_PAIR_NAME_LEN)?,
            },
            5 => PairMessage::Refused {
                reason: PairRefusal::from_code(r.u8("pairing refusal")?)?,
                retry_after_ms: r.u32("retry after")?,
                message: r.string("refusal message", MAX_PAIR_REASON_LEN)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "pairing message",
                    tag: u32::from(tag),
                })
            }
        })
    }
}

impl PairMessage {
    /// The message framed for the stream: `len: u16` + body. Fields over their limits are cut
    /// (names and messages at a character boundary) so the frame always decodes.
    pub fn to_frame(&self) -> Vec<u8> {
        let clipped = self.clipped();
        let body = clipped.to_bytes();
        let mut out = Vec::with_capacity(body.len() + 2);
        out.put_u16(body.len() as u16);
        out.extend_from_slice(&body);
        out
    }

    /// The frame length announced by a 2-byte header, checked against the limit.
    pub fn frame_len(header: [u8; 2]) -> Result<usize, DecodeError> {
        let len = usize::from(u16::from_le_bytes(header));
        if len > MAX_PAIR_MESSAGE_LEN {
            return Err(DecodeError::TooLarge {
                what: "pairing message",
                len,
                max: MAX_PAIR_MESSAGE_LEN,
            });
        }
        Ok(len)
    }

    fn clipped(&self) -> PairMessage {
        let cut = |s: &str, max: usize| {
            let mut end = s.len().min(max);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        match self {
            PairMessage::Start {
                version,
                viewer_name,
                key,
            } => PairMessage::Start {
                version: *version,
                viewer_name: cut(viewer_name, MAX_PAIR_NAME_LEN),
                key: key[..key.len().min(MAX_PAIR_KEY_LEN)].to_vec(),
            },
            PairMessage::Reply {
                host_name,
                key,
                confirm,
            } => PairMessage::Reply {
                host_name: cut(host_name, MAX_PAIR_NAME_LEN),
                key: key[..key.len().min(MAX_PAIR_KEY_LEN)].to_vec(),
                confirm: *confirm,
            },
            PairMessage::Done { authorized_as } => PairMessage::Done {
                authorized_as: cut(authorized_as, MAX_PAIR_NAME_LEN),
            },
            PairMessage::Refused {
                reason,
                retry_after_ms,
                message,
            } => PairMessage::Refused {
                reason: *reason,
                retry_after_ms: *retry_after_ms,
                message: cut(message, MAX_PAIR_REASON_LEN),
            },
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<PairMessage> {
        vec![
            PairMessage::Start {
                version: PAIR_VERSION,
                viewer_name: "alice's laptop".into(),
                key: vec![0x41; 33],
            },
            PairMessage::Reply {
                host_name: "grading-01".into(),
                key: vec![0x42; 33],
                confirm: [7; 32],
            },
            PairMessage::Confirm { confirm: [9; 32] },
            PairMessage::Done {
                authorized_as: "alice".into(),
            },
            PairMessage::Refused {
                reason: PairRefusal::RateLimited,
                retry_after_ms: 2000,
                message: "too many attempts".into(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in all() {
            let frame = m.to_frame();
            let len = PairMessage::frame_len([frame[0], frame[1]]).unwrap();
            assert_eq!(len, frame.len() - 2);
            assert_eq!(PairMessage::from_bytes(&frame[2..]).unwrap(), m);
        }
    }

    #[test]
    fn limits_and_garbage() {
        assert!(PairMessage::frame_len(2000u16.to_le_bytes()).is_err());
        assert!(PairMessage::from_bytes(&[]).is_err());
        assert!(PairMessage::from_bytes(&[9]).is_err());
        assert!(PairMessage::from_bytes(&[5, 99, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(PairMessage::from_bytes(&[3, 1, 2]).is_err());
        // Over-long fields are cut on the sending side, so the frame still decodes.
        let long = PairMessage::Done {
            authorized_as: "é".repeat(200),
        };
        let frame = long.to_frame();
        match PairMessage::from_bytes(&frame[2..]).unwrap() {
            PairMessage::Done { authorized_as } => assert!(authorized_as.len() <= 128),
            other => panic!("{other:?}"),
        }
    }
}
