//! Binary encoding: a hand-written little-endian layout with precise, non-panicking decode errors.
//!
//! Every message is `tag: u8` followed by its body (see [`crate::msg::Message`]). Integers are
//! little-endian and fixed-width; variable-length fields carry a length prefix whose maximum is
//! checked *before* anything is allocated. Floats must be finite. A decoder never panics on any
//! input: it returns a [`DecodeError`] that says what was being read.
//!
//! On reliable QUIC streams messages are framed as `len: u32` + message ([`encode_frame`],
//! [`FrameReader`]); a datagram carries exactly one message and nothing after it.

use crate::msg::Message;

/// Default upper bound for one framed message (1 MiB). Larger frames are refused before they are
/// buffered, so a hostile peer cannot make us allocate.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 20;

/// Why a byte sequence is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field: a truncated datagram, a cut frame, or a length prefix that
    /// promises more than was sent.
    #[error("truncated input while reading {context}: {needed} more byte(s) needed")]
    Truncated {
        /// The field being read.
        context: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A tag this protocol version does not define: a newer or corrupt peer.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which kind of tag.
        what: &'static str,
        /// The value found.
        tag: u32,
    },
    /// A field whose value breaks a rule of the format (out of range, not UTF-8, not finite, …).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// What rule it breaks.
        detail: &'static str,
    },
    /// A frame or field longer than the configured limit: a hostile or broken peer.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The field or frame.
        what: &'static str,
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes left over after a complete message: the peer and we disagree on the layout.
    #[error("{count} trailing byte(s) after a complete {context}")]
    TrailingBytes {
        /// What was decoded.
        context: &'static str,
        /// How many bytes were left.
        count: usize,
    },
}

/// A cursor over input bytes. All reads are bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], DecodeError> {
        let rem = self.remaining();
        if n > rem {
            return Err(DecodeError::Truncated {
                context,
                needed: n - rem,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, context: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, context)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self, context: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(context)?[0])
    }
    /// Little-endian u16.
    pub fn u16(&mut self, context: &'static str) -> Result<u16, DecodeError> {
        self.array(context).map(u16::from_le_bytes)
    }
    /// Little-endian u32.
    pub fn u32(&mut self, context: &'static str) -> Result<u32, DecodeError> {
        self.array(context).map(u32::from_le_bytes)
    }
    /// Little-endian u64.
    pub fn u64(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        self.array(context).map(u64::from_le_bytes)
    }
    /// One signed byte.
    pub fn i8(&mut self, context: &'static str) -> Result<i8, DecodeError> {
        self.array(context).map(i8::from_le_bytes)
    }
    /// Little-endian i16.
    pub fn i16(&mut self, context: &'static str) -> Result<i16, DecodeError> {
        self.array(context).map(i16::from_le_bytes)
    }
    /// Little-endian i32.
    pub fn i32(&mut self, context: &'static str) -> Result<i32, DecodeError> {
        self.array(context).map(i32::from_le_bytes)
    }
    /// Little-endian i64.
    pub fn i64(&mut self, context: &'static str) -> Result<i64, DecodeError> {
        self.array(context).map(i64::from_le_bytes)
    }
    /// A finite little-endian f32.
    pub fn f32(&mut self, context: &'static str) -> Result<f32, DecodeError> {
        let v = f32::from_le_bytes(self.array(context)?);
        if !v.is_finite() {
            return Err(DecodeError::Invalid {
                what: context,
                detail: "not a finite number",
            });
        }
        Ok(v)
    }
    /// A boolean encoded as 0 or 1.
    pub fn bool(&mut self, context: &'static str) -> Result<bool, DecodeError> {
        match self.u8(context)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid {
                what: context,
                detail: "boolean must be 0 or 1",
            }),
        }
    }
    /// Bytes with a u16 length prefix, at most `max`.
    pub fn bytes_u16(
        &mut self,
        context: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(context)? as usize;
        self.bounded(len, context, max)
    }
    /// Bytes with a u32 length prefix, at most `max`.
    pub fn bytes_u32(
        &mut self,
        context: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(context)? as usize;
        self.bounded(len, context, max)
    }
    fn bounded(
        &mut self,
        len: usize,
        context: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        if len > max {
            return Err(DecodeError::TooLarge {
                what: context,
                len,
                max,
            });
        }
        self.take(len, context)
    }
    /// A UTF-8 string with a u16 length prefix, at most `max` bytes.
    pub fn string(&mut self, context: &'static str, max: usize) -> Result<String, DecodeError> {
        let b = self.bytes_u16(context, max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid {
                what: context,
                detail: "not UTF-8",
            })
    }
    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    /// Fails when bytes are left over.
    pub fn finish(&self, context: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { context, count }),
        }
    }
}

/// Append-only little-endian writer helpers on `Vec<u8>`.
pub trait WriteExt {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// Little-endian u16.
    fn put_u16(&mut self, v: u16);
    /// Little-endian u32.
    fn put_u32(&mut self, v: u32);
    /// Little-endian u64.
    fn put_u64(&mut self, v: u64);
    /// Signed byte.
    fn put_i8(&mut self, v: i8);
    /// Little-endian i16.
    fn put_i16(&mut self, v: i16);
    /// Little-endian i32.
    fn put_i32(&mut self, v: i32);
    /// Little-endian i64.
    fn put_i64(&mut self, v: i64);
    /// Little-endian f32.
    fn put_f32(&mut self, v: f32);
    /// 0 or 1.
    fn put_bool(&mut self, v: bool);
    /// u16 length prefix + bytes. The caller keeps the length within the field's limit (the
    /// limits are far below `u16::MAX`); longer input is truncated rather than mis-framed.
    fn put_bytes_u16(&mut self, b: &[u8]);
    /// u32 length prefix + bytes.
    fn put_bytes_u32(&mut self, b: &[u8]);
    /// A string as [`WriteExt::put_bytes_u16`].
    fn put_str(&mut self, s: &str);
}

impl WriteExt for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i8(&mut self, v: i8) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i16(&mut self, v: i16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_f32(&mut self, v: f32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bool(&mut self, v: bool) {
        self.push(v as u8);
    }
    fn put_bytes_u16(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u16::MAX as usize)];
        self.put_u16(b.len() as u16);
        self.extend_from_slice(b);
    }
    fn put_bytes_u32(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u32::MAX as usize)];
        self.put_u32(b.len() as u32);
        self.extend_from_slice(b);
    }
    fn put_str(&mut self, s: &str) {
        // Cut at a char boundary so the result stays valid UTF-8.
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.put_bytes_u16(&s.as_bytes()[..end]);
    }
}

/// A value with a wire form.
pub trait Encode {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding as a new buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// A value that can be read back from its wire form.
pub trait Decode: Sized {
    /// Reads one value; leaves the reader after it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes `buf` entirely: trailing bytes are an error.
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::decode(&mut r)?;
        r.finish(std::any::type_name::<Self>())?;
        Ok(v)
    }
}

/// Checks that `msg` survives the wire unchanged: the decoder is the one statement of every
/// field's rules, so a message it would refuse or alter (an out-of-range value, a field over
/// its length limit) is caught on the sending side instead of closing the peer's session.
pub fn check_sendable(msg: &Message) -> Result<(), DecodeError> {
    let back = Message::from_bytes(&msg.to_bytes())?;
    if &back != msg {
        return Err(DecodeError::Invalid {
            what: "message",
            detail: "a field exceeds its limit and would be cut on the wire",
        });
    }
    Ok(())
}

/// Appends `msg` as a stream frame: `len: u32` + message.
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u32(0);
    msg.encode(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reassembles length-prefixed frames from a byte stream that arrives in arbitrary pieces.
///
/// A frame announced longer than the limit is refused as soon as its header arrives, before any
/// of it is buffered.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
}

impl FrameReader {
    /// A reader that refuses frames over `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            max_len,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > self.max_len {
            return Err(DecodeError::TooLarge {
                what: "frame",
                len,
                max: self.max_len,
            });
        }
        // `avail.len() >= 4` here, so this cannot overflow even with a huge limit.
        if avail.len() - 4 < len {
            return Ok(None);
        }
        let body = &avail[4..4 + len];
        let msg = Message::from_bytes(body);
        self.start += 4 + len;
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        msg.map(Some)
    }
}
