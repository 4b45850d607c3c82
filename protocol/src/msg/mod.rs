//! Typed messages. Each top-level [`Message`] is a tag byte and a body; see [`crate::coding`].

mod audio;
mod control;
mod cursor;
mod input;
mod video;

pub use audio::*;
pub use control::*;
pub use cursor::*;
pub use input::*;
pub use video::*;

use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Defines a set of flags stored in an unsigned integer, with named members.
macro_rules! flag_set {
    ($(#[$m:meta])* $name:ident($int:ty) { $($(#[$fm:meta])* $flag:ident = $bit:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $int);
        #[allow(missing_docs)]
        impl $name {
            $($(#[$fm])* pub const $flag: $name = $name(1 << $bit);)*
            /// Every member this version defines.
            pub const ALL: $name = $name(0 $(| (1 << $bit))*);
            /// No member.
            pub const EMPTY: $name = $name(0);
            /// Whether every member of `other` is in `self`.
            pub fn contains(self, other: $name) -> bool { self.0 & other.0 == other.0 }
            /// Members in both.
            pub fn intersection(self, other: $name) -> $name { $name(self.0 & other.0) }
            /// Members in either.
            pub fn union(self, other: $name) -> $name { $name(self.0 | other.0) }
            /// Whether no member is set.
            pub fn is_empty(self) -> bool { self.0 == 0 }
            /// Names of the members set (unknown bits are skipped).
            pub fn names(self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $(if self.contains($name::$flag) { v.push(stringify!($flag)); })*
                v
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.names().join("|"))
            }
        }
    };
}
pub(crate) use flag_set;

/// Defines a fieldless enum with explicit u8 wire values and a decoder that names unknown tags.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum $name { $($(#[$vm])* $var = $val),* }
        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            /// The wire value.
            pub fn to_u8(self) -> u8 { self as u8 }
            /// From the wire value.
            pub fn from_u8(v: u8) -> Result<Self, crate::coding::DecodeError> {
                match v {
                    $($val => Ok($name::$var),)*
                    _ => Err(crate::coding::DecodeError::UnknownTag { what: stringify!($name), tag: v as u32 }),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

const TAG_CONTROL: u8 = 1;
pub(crate) const TAG_VIDEO: u8 = 2;
const TAG_AUDIO: u8 = 3;
const TAG_INPUT: u8 = 4;
const TAG_CURSOR_SHAPE: u8 = 5;
const TAG_CURSOR_POSITION: u8 = 6;

/// Everything that crosses the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Session control (control stream).
    Control(Control),
    /// A fragment of an encoded video access unit (datagram).
    Video(VideoFragment),
    /// One audio packet (datagram).
    Audio(AudioPacket),
    /// One input event (input stream).
    Input(InputMessage),
    /// A cursor image, cached by id (control stream).
    CursorShape(CursorShape),
    /// Where the cursor is (datagram).
    CursorPosition(CursorPosition),
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Control(m) => {
                out.put_u8(TAG_CONTROL);
                m.encode(out)
            }
            Message::Video(m) => {
                out.put_u8(TAG_VIDEO);
                m.encode(out)
            }
            Message::Audio(m) => {
                out.put_u8(TAG_AUDIO);
                m.encode(out)
            }
            Message::Input(m) => {
                out.put_u8(TAG_INPUT);
                m.encode(out)
            }
            Message::CursorShape(m) => {
                out.put_u8(TAG_CURSOR_SHAPE);
                m.encode(out)
            }
            Message::CursorPosition(m) => {
                out.put_u8(TAG_CURSOR_POSITION);
                m.encode(out)
            }
        }
    }
}

/// The datagram for one audio packet (the same bytes as `Message::Audio(p.clone())`, without
/// copying the payload).
pub fn audio_datagram(p: &AudioPacket) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.payload.len() + AUDIO_PACKET_OVERHEAD);
    out.put_u8(TAG_AUDIO);
    p.encode(&mut out);
    out
}

impl Decode for Message {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("message tag")? {
            TAG_CONTROL => Message::Control(Control::decode(r)?),
            TAG_VIDEO => Message::Video(VideoFragment::decode(r)?),
            TAG_AUDIO => Message::Audio(AudioPacket::decode(r)?),
            TAG_INPUT => Message::Input(InputMessage::decode(r)?),
            TAG_CURSOR_SHAPE => Message::CursorShape(CursorShape::decode(r)?),
            TAG_CURSOR_POSITION => Message::CursorPosition(CursorPosition::decode(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message",
                    tag: tag as u32,
                })
            }
        })
    }
}
