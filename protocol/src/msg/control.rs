//! Control-stream messages: hello/welcome, stream configuration, clock sync, recovery requests,
//! stats and goodbye.

use super::{flag_set, wire_enum};
use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Longest peer or host name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest goodbye message accepted, in bytes.
pub const MAX_GOODBYE_LEN: usize = 1024;
/// Most extensions in one hello.
pub const MAX_EXTENSIONS: usize = 32;
/// Largest extension body, in bytes.
pub const MAX_EXTENSION_LEN: usize = 4096;

flag_set! {
    /// Video codecs a peer can encode (host) or decode (viewer).
    VideoCodecs(u16) { H264 = 0, HEVC = 1, AV1 = 2 }
}
flag_set! {
    /// Sample bit depths.
    BitDepths(u8) { EIGHT = 0, TEN = 1 }
}
flag_set! {
    /// Chroma subsampling formats.
    ChromaFormats(u8) { YUV420 = 0, YUV444 = 1 }
}
flag_set! {
    /// Audio channel layouts.
    AudioLayouts(u8) { MONO = 0, STEREO = 1, SURROUND_5_1 = 2, SURROUND_7_1 = 3 }
}
flag_set! {
    /// Kinds of input a viewer can send and a host will inject.
    InputKinds(u8) { KEYBOARD = 0, MOUSE = 1, PEN = 2, JOG_SHUTTLE = 3, TOUCH = 4, PROBE = 5 }
}

/// What a peer can do. The host answers with the intersection of its own and the viewer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Video codecs.
    pub video_codecs: VideoCodecs,
    /// Bit depths.
    pub bit_depths: BitDepths,
    /// Chroma formats.
    pub chroma: ChromaFormats,
    /// Audio layouts.
    pub audio_layouts: AudioLayouts,
    /// Input kinds.
    pub input_kinds: InputKinds,
}

impl Capabilities {
    /// Everything this protocol version can describe.
    pub const ALL: Capabilities = Capabilities {
        video_codecs: VideoCodecs::ALL,
        bit_depths: BitDepths::ALL,
        chroma: ChromaFormats::ALL,
        audio_layouts: AudioLayouts::ALL,
        input_kinds: InputKinds::ALL,
    };

    /// What both sides support.
    pub fn intersection(&self, other: &Capabilities) -> Capabilities {
        Capabilities {
            video_codecs: self.video_codecs.intersection(other.video_codecs),
            bit_depths: self.bit_depths.intersection(other.bit_depths),
            chroma: self.chroma.intersection(other.chroma),
            audio_layouts: self.audio_layouts.intersection(other.audio_layouts),
            input_kinds: self.input_kinds.intersection(other.input_kinds),
        }
    }
}

impl Encode for Capabilities {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.video_codecs.0);
        out.put_u8(self.bit_depths.0);
        out.put_u8(self.chroma.0);
        out.put_u8(self.audio_layouts.0);
        out.put_u8(self.input_kinds.0);
    }
}

impl Decode for Capabilities {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Unknown bits are kept: they are a newer peer's features and drop out of the
        // intersection with ours.
        Ok(Capabilities {
            video_codecs: VideoCodecs(r.u16("video codecs")?),
            bit_depths: BitDepths(r.u8("bit depths")?),
            chroma: ChromaFormats(r.u8("chroma formats")?),
            audio_layouts: AudioLayouts(r.u8("audio layouts")?),
            input_kinds: InputKinds(r.u8("input kinds")?),
        })
    }
}

/// An optional, typed blob a newer peer may add to hello/welcome; unknown ids are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Registered id (see the design module).
    pub id: u16,
    /// Opaque body, at most [`MAX_EXTENSION_LEN`] bytes.
    pub body: Vec<u8>,
}

fn encode_extensions(exts: &[Extension], out: &mut Vec<u8>) {
    let n = exts.len().min(MAX_EXTENSIONS);
    out.put_u8(n as u8);
    for e in &exts[..n] {
        out.put_u16(e.id);
        out.put_bytes_u16(&e.body[..e.body.len().min(MAX_EXTENSION_LEN)]);
    }
}

fn decode_extensions(r: &mut Reader<'_>) -> Result<Vec<Extension>, DecodeError> {
    let n = r.u8("extension count")? as usize;
    if n > MAX_EXTENSIONS {
        return Err(DecodeError::TooLarge {
            what: "extension list",
            len: n,
            max: MAX_EXTENSIONS,
        });
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u16("extension id")?;
        let body = r.bytes_u16("extension body", MAX_EXTENSION_LEN)?.to_vec();
        v.push(Extension { id, body });
    }
    Ok(v)
}

/// Viewer → host, first message on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Oldest protocol revision the viewer speaks.
    pub min_version: u16,
    /// Newest protocol revision the viewer speaks.
    pub max_version: u16,
    /// Human-readable viewer name (for the host's log and audit).
    pub name: String,
    /// What the viewer can decode and send.
    pub capabilities: Capabilities,
    /// Forward-compatible additions.
    pub extensions: Vec<Extension>,
}

/// Host → viewer: the session is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The revision both will speak (the newest common one).
    pub version: u16,
    /// Random id of this session, for logs on both sides.
    pub session_id: u64,
    /// Human-readable host name.
    pub host_name: String,
    /// Capabilities both sides share; the session uses nothing outside them.
    pub capabilities: Capabilities,
    /// Forward-compatible additions.
    pub extensions: Vec<Extension>,
}

wire_enum! {
    /// A video codec.
    VideoCodec { H264 = 0, Hevc = 1, Av1 = 2 }
}
wire_enum! {
    /// Chroma subsampling of a stream.
    Chroma { Yuv420 = 0, Yuv444 = 1 }
}
wire_enum! {
    /// YCbCr matrix coefficients.
    ColourMatrix { Bt601 = 0, Bt709 = 1, Bt2020Ncl = 2, Identity = 3 }
}
wire_enum! {
    /// Sample range: limited (video, 16–235 at 8 bits) or full (0–255).
    ColourRange { Limited = 0, Full = 1 }
}
wire_enum! {
    /// Colour primaries.
    ColourPrimaries { Bt709 = 0, Bt2020 = 1, DisplayP3 = 2 }
}
wire_enum! {
    /// Transfer characteristics.
    TransferFunction { Bt709 = 0, Srgb = 1, Pq = 2, Hlg = 3 }
}

/// Host → viewer: the format of one video stream. Sent before its first frame and on change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Which stream (0 is the main display).
    pub stream_id: u8,
    /// Codec of the access units.
    pub codec: VideoCodec,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Nominal frame rate in millihertz (60 fps = 60000).
    pub fps_millihz: u32,
    /// Bits per sample (8 or 10).
    pub bit_depth: u8,
    /// Chroma format.
    pub chroma: Chroma,
    /// Matrix.
    pub matrix: ColourMatrix,
    /// Range.
    pub range: ColourRange,
    /// Primaries.
    pub primaries: ColourPrimaries,
    /// Transfer.
    pub transfer: TransferFunction,
}

/// Largest width or height accepted (16K).
pub const MAX_DIMENSION: u32 = 16384;

impl Encode for StreamConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.stream_id);
        out.put_u8(self.codec.to_u8());
        out.put_u32(self.width);
        out.put_u32(self.height);
        out.put_u32(self.fps_millihz);
        out.put_u8(self.bit_depth);
        out.put_u8(self.chroma.to_u8());
        out.put_u8(self.matrix.to_u8());
        out.put_u8(self.range.to_u8());
        out.put_u8(self.primaries.to_u8());
        out.put_u8(self.transfer.to_u8());
    }
}

impl Decode for StreamConfig {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let c = StreamConfig {
            stream_id: r.u8("stream id")?,
            codec: VideoCodec::from_u8(r.u8("codec")?)?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            fps_millihz: r.u32("frame rate")?,
            bit_depth: r.u8("bit depth")?,
            chroma: Chroma::from_u8(r.u8("chroma")?)?,
            matrix: ColourMatrix::from_u8(r.u8("matrix")?)?,
            range: ColourRange::from_u8(r.u8("range")?)?,
            primaries: ColourPrimaries::from_u8(r.u8("primaries")?)?,
            transfer: TransferFunction::from_u8(r.u8("transfer")?)?,
        };
        if c.width == 0 || c.height == 0 || c.width > MAX_DIMENSION || c.height > MAX_DIMENSION {
            return Err(DecodeError::Invalid {
                what: "stream size",
                detail: "width and height must be 1..=16384",
            });
        }
        if c.bit_depth != 8 && c.bit_depth != 10 {
            return Err(DecodeError::Invalid {
                what: "bit depth",
                detail: "must be 8 or 10",
            });
        }
        Ok(c)
    }
}

impl StreamConfig {
    /// The stream's profile in words: "HEVC Main 10", "H.264 High 10", "HEVC Main 4:4:4 10", …
    pub fn profile_name(&self) -> String {
        profile_name(self.codec, self.bit_depth, self.chroma)
    }
}

/// A codec, bit depth and chroma format in words ("HEVC Main 10", "H.264 High 10", …), for logs,
/// the stats overlay and reports.
pub fn profile_name(codec: VideoCodec, bit_depth: u8, chroma: Chroma) -> String {
    let c444 = chroma == Chroma::Yuv444;
    match (codec, bit_depth > 8, c444) {
        (VideoCodec::Hevc, false, false) => "HEVC Main".into(),
        (VideoCodec::Hevc, true, false) => "HEVC Main 10".into(),
        (VideoCodec::Hevc, false, true) => "HEVC Main 4:4:4".into(),
        (VideoCodec::Hevc, true, true) => "HEVC Main 4:4:4 10".into(),
        (VideoCodec::H264, false, false) => "H.264 (8-bit 4:2:0)".into(),
        (VideoCodec::H264, true, false) => "H.264 High 10".into(),
        (VideoCodec::H264, _, true) => format!("H.264 High 4:4:4 ({bit_depth}-bit)"),
        (VideoCodec::Av1, _, _) => format!("AV1 {bit_depth}-bit {chroma:?}"),
    }
}

/// Viewer → host clock-sync probe. `viewer_send_us` is on the viewer's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Sequence number.
    pub seq: u32,
    /// Viewer clock when sent (t1).
    pub viewer_send_us: u64,
}

/// Host → viewer answer to a [`Ping`], NTP style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's sequence number.
    pub seq: u32,
    /// The ping's `viewer_send_us`, echoed (t1).
    pub viewer_send_us: u64,
    /// Host clock when the ping was handled (t2).
    pub host_recv_us: u64,
    /// Host clock when this pong was handed to the transport (t3).
    pub host_send_us: u64,
}

wire_enum! {
    /// Why the viewer asks for a keyframe.
    KeyframeReason { Startup = 0, FrameLost = 1, DecoderError = 2, User = 3 }
}

/// Viewer → host: send a keyframe on this stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeRequest {
    /// Stream.
    pub stream_id: u8,
    /// Why.
    pub reason: KeyframeReason,
}

/// Viewer → host: frames in `first..=last` were lost; the encoder should stop referencing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidateReferences {
    /// Stream.
    pub stream_id: u8,
    /// First lost frame number.
    pub first_frame: u32,
    /// Last lost frame number.
    pub last_frame: u32,
}

/// Viewer → host: what the viewer observed over the last period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsReport {
    /// Length of the period in milliseconds.
    pub period_ms: u32,
    /// Frames fully received.
    pub frames_received: u32,
    /// Frames decoded.
    pub frames_decoded: u32,
    /// Frames given up (lost or stale).
    pub frames_lost: u32,
    /// Bytes of media received.
    pub bytes_received: u64,
    /// Smoothed round-trip time.
    pub rtt_us: u32,
    /// Estimated host clock − viewer clock.
    pub clock_offset_us: i64,
    /// Median decode time.
    pub decode_p50_us: u32,
    /// Median present time.
    pub present_p50_us: u32,
}

impl Encode for StatsReport {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.period_ms);
        out.put_u32(self.frames_received);
        out.put_u32(self.frames_decoded);
        out.put_u32(self.frames_lost);
        out.put_u64(self.bytes_received);
        out.put_u32(self.rtt_us);
        out.put_i64(self.clock_offset_us);
        out.put_u32(self.decode_p50_us);
        out.put_u32(self.present_p50_us);
    }
}

impl Decode for StatsReport {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StatsReport {
            period_ms: r.u32("stats period")?,
            frames_received: r.u32("frames received")?,
            frames_decoded: r.u32("frames decoded")?,
            frames_lost: r.u32("frames lost")?,
            bytes_received: r.u64("bytes received")?,
            rtt_us: r.u32("rtt")?,
            clock_offset_us: r.i64("clock offset")?,
            decode_p50_us: r.u32("decode p50")?,
            present_p50_us: r.u32("present p50")?,
        })
    }
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodbyeReason {
    /// The user closed it.
    Normal,
    /// No common protocol revision; carries the sender's supported range.
    VersionMismatch {
        /// Sender's oldest revision.
        min_version: u16,
        /// Sender's newest revision.
        max_version: u16,
    },
    /// The peer broke the protocol.
    ProtocolError,
    /// Nothing heard from the peer for too long.
    Timeout,
    /// The host is shutting down.
    HostShutdown,
    /// The viewer is not allowed (policy, revoked, limits).
    Refused,
}

/// Either side: the session ends now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goodbye {
    /// Why.
    pub reason: GoodbyeReason,
    /// Details for humans, at most [`MAX_GOODBYE_LEN`] bytes.
    pub message: String,
}

impl Encode for Goodbye {
    fn encode(&self, out: &mut Vec<u8>) {
        match self.reason {
            GoodbyeReason::Normal => out.put_u8(0),
            GoodbyeReason::VersionMismatch {
                min_version,
                max_version,
            } => {
                out.put_u8(1);
                out.put_u16(min_version);
                out.put_u16(max_version);
            }
            GoodbyeReason::ProtocolError => out.put_u8(2),
            GoodbyeReason::Timeout => out.put_u8(3),
            GoodbyeReason::HostShutdown => out.put_u8(4),
            GoodbyeReason::Refused => out.put_u8(5),
        }
        let mut end = self.message.len().min(MAX_GOODBYE_LEN);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        out.put_str(&self.message[..end]);
    }
}

impl Decode for Goodbye {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let reason = match r.u8("goodbye reason")? {
            0 => GoodbyeReason::Normal,
            1 => GoodbyeReason::VersionMismatch {
                min_version: r.u16("min version")?,
                max_version: r.u16("max version")?,
            },
            2 => GoodbyeReason::ProtocolError,
            3 => GoodbyeReason::Timeout,
            4 => GoodbyeReason::HostShutdown,
            5 => GoodbyeReason::Refused,
            t => {
                return Err(DecodeError::UnknownTag {
                    what: "goodbye reason",
                    tag: t as u32,
                })
            }
        };
        Ok(Goodbye {
            reason,
            message: r.string("goodbye message", MAX_GOODBYE_LEN)?,
        })
    }
}

/// Messages on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Viewer → host, first.
    Hello(Hello),
    /// Host → viewer, answer to hello.
    Welcome(Welcome),
    /// Host → viewer, before a stream's first frame.
    StreamConfig(StreamConfig),
    /// Viewer → host clock probe.
    Ping(Ping),
    /// Host → viewer clock answer.
    Pong(Pong),
    /// Viewer → host.
    KeyframeRequest(KeyframeRequest),
    /// Viewer → host.
    InvalidateReferences(InvalidateReferences),
    /// Viewer → host.
    Stats(StatsReport),
    /// Either side, last.
    Goodbye(Goodbye),
    /// Host → viewer (revision 3), before the first audio packet and on change.
    AudioConfig(super::AudioConfig),
}

impl Encode for Control {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Control::Hello(h) => {
                out.put_u8(0);
                out.put_u16(h.min_version);
                out.put_u16(h.max_version);
                out.put_str(&h.name[..floor_char_boundary(&h.name, MAX_NAME_LEN)]);
                h.capabilities.encode(out);
                encode_extensions(&h.extensions, out);
            }
            Control::Welcome(w) => {
                out.put_u8(1);
                out.put_u16(w.version);
                out.put_u64(w.session_id);
                out.put_str(&w.host_name[..floor_char_boundary(&w.host_name, MAX_NAME_LEN)]);
                w.capabilities.encode(out);
                encode_extensions(&w.extensions, out);
            }
            Control::StreamConfig(c) => {
                out.put_u8(2);
                c.encode(out);
            }
            Control::Ping(p) => {
                out.put_u8(3);
                out.put_u32(p.seq);
                out.put_u64(p.viewer_send_us);
            }
            Control::Pong(p) => {
                out.put_u8(4);
                out.put_u32(p.seq);
                out.put_u64(p.viewer_send_us);
                out.put_u64(p.host_recv_us);
                out.put_u64(p.host_send_us);
            }
            Control::KeyframeRequest(k) => {
                out.put_u8(5);
                out.put_u8(k.stream_id);
                out.put_u8(k.reason.to_u8());
            }
            Control::InvalidateReferences(i) => {
                out.put_u8(6);
                out.put_u8(i.stream_id);
                out.put_u32(i.first_frame);
                out.put_u32(i.last_frame);
            }
            Control::Stats(s) => {
                out.put_u8(7);
                s.encode(out);
            }
            Control::Goodbye(g) => {
                out.put_u8(8);
                g.encode(out);
            }
            Control::AudioConfig(a) => {
                out.put_u8(9);
                a.encode(out);
            }
        }
    }
}

/// The largest index `<= max` that is a char boundary of `s`.
pub(crate) fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

impl Decode for Control {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("control tag")? {
            0 => {
                let min_version = r.u16("min version")?;
                let max_version = r.u16("max version")?;
                if min_version > max_version {
                    return Err(DecodeError::Invalid {
                        what: "hello versions",
                        detail: "min_version > max_version",
                    });
                }
                Control::Hello(Hello {
                    min_version,
                    max_version,
                    name: r.string("viewer name", MAX_NAME_LEN)?,
                    capabilities: Capabilities::decode(r)?,
                    extensions: decode_extensions(r)?,
                })
            }
            1 => Control::Welcome(Welcome {
                version: r.u16("version")?,
                session_id: r.u64("session id")?,
                host_name: r.string("host name", MAX_NAME_LEN)?,
                capabilities: Capabilities::decode(r)?,
                extensions: decode_extensions(r)?,
            }),
            2 => Control::StreamConfig(StreamConfig::decode(r)?),
            3 => Control::Ping(Ping {
                seq: r.u32("ping seq")?,
                viewer_send_us: r.u64("ping time")?,
            }),
            4 => Control::Pong(Pong {
                seq: r.u32("pong seq")?,
                viewer_send_us: r.u64("pong t1")?,
                host_recv_us: r.u64("pong t2")?,
                host_send_us: r.u64("pong t3")?,
            }),
            5 => Control::KeyframeRequest(KeyframeRequest {
                stream_id: r.u8("stream id")?,
                reason: KeyframeReason::from_u8(r.u8("keyframe reason")?)?,
            }),
            6 => {
                let stream_id = r.u8("stream id")?;
                let first_frame = r.u32("first frame")?;
                let last_frame = r.u32("last frame")?;
                Control::InvalidateReferences(InvalidateReferences {
                    stream_id,
                    first_frame,
                    last_frame,
                })
            }
            7 => Control::Stats(StatsReport::decode(r)?),
            8 => Control::Goodbye(Goodbye::decode(r)?),
            9 => Control::AudioConfig(super::AudioConfig::decode(r)?),
            t => {
                return Err(DecodeError::UnknownTag {
                    what: "control message",
                    tag: t as u32,
                })
            }
        })
    }
}
