//! Deterministic, dependency-free fuzzing of the decoder: at least 1,000,000 inputs go through
//! `Message::from_bytes` and a `FrameReader`. Half are random byte strings (biased towards valid
//! message and sub-message tags), half are mutations of valid encodings (bit flips, byte
//! replacements, insertions, deletions, truncations, length-field corruption, splices).
//!
//! Checks, beyond "nothing panics":
//! * whatever decodes re-encodes to exactly the input (the encoding is canonical);
//! * a `FrameReader` fed `len ‖ input` in random chunks agrees with `Message::from_bytes(input)`,
//!   and a valid frame after a bad one decodes (or the reader reports an error, never garbage).
//!
//! The seed and the number of inputs can be changed with `CODEC_FUZZ_SEED` and
//! `CODEC_FUZZ_INPUTS` (never fewer than 1,000,000).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

use sightline_protocol::coding::{encode_frame, Decode, DecodeError, Encode, FrameReader};
use sightline_protocol::msg::*;
use sightline_protocol::time::{HostMicros, MediaTime};

const MIN_INPUTS: u64 = 1_000_000;
const DEFAULT_SEED: u64 = 0x5167_6874_6c69_6e65; // "Sightline"
const MAX_RANDOM_LEN: usize = 300;

/// SplitMix64: tiny, fast, good enough to drive a fuzzer.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    fn u8(&mut self) -> u8 {
        self.next_u64() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next_u64() as u16
    }
    fn u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }
    fn string(&mut self, max_chars: usize) -> String {
        const CHARS: &[char] = &['a', 'Z', '0', ' ', '-', 'é', 'ß', '✓', '中', '😀'];
        let n = self.below(max_chars + 1);
        (0..n).map(|_| self.pick(CHARS)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Valid messages (short payloads keep the run fast)
// ---------------------------------------------------------------------------------------------

fn gen_caps(r: &mut SplitMix64) -> Capabilities {
    if r.bool() {
        Capabilities::ALL
    } else {
        Capabilities {
            video_codecs: VideoCodecs(r.u16()),
            bit_depths: BitDepths(r.u8()),
            chroma: ChromaFormats(r.u8()),
            audio_layouts: AudioLayouts(r.u8()),
            input_kinds: InputKinds(r.u8()),
        }
    }
}

fn gen_extensions(r: &mut SplitMix64) -> Vec<Extension> {
    let n = r.pick(&[0, 0, 1, 2, 3]);
    (0..n)
        .map(|_| {
            let len = r.below(12);
            Extension {
                id: r.u16(),
                body: r.bytes(len),
            }
        })
        .collect()
}

fn gen_control(r: &mut SplitMix64) -> Control {
    match r.below(9) {
        0 => {
            let (a, b) = (r.u16() % 4, r.u16() % 4);
            Control::Hello(Hello {
                min_version: a.min(b),
                max_version: a.max(b),
                name: r.string(12),
                capabilities: gen_caps(r),
                extensions: gen_extensions(r),
            })
        }
        1 => Control::Welcome(Welcome {
            version: r.u16(),
            session_id: r.next_u64(),
            host_name: r.string(12),
            capabilities: gen_caps(r),
            extensions: gen_extensions(r),
        }),
        2 => Control::StreamConfig(StreamConfig {
            stream_id: r.u8(),
            codec: r.pick(VideoCodec::ALL),
            width: r.range(1, MAX_DIMENSION as u64) as u32,
            height: r.range(1, MAX_DIMENSION as u64) as u32,
            fps_millihz: r.u32(),
            bit_depth: r.pick(&[8, 10]),
            chroma: r.pick(Chroma::ALL),
            matrix: r.pick(ColourMatrix::ALL),
            range: r.pick(ColourRange::ALL),
            primaries: r.pick(ColourPrimaries::ALL),
            transfer: r.pick(TransferFunction::ALL),
        }),
        3 => Control::Ping(Ping {
            seq: r.u32(),
            viewer_send_us: r.next_u64(),
        }),
        4 => Control::Pong(Pong {
            seq: r.u32(),
            viewer_send_us: r.next_u64(),
            host_recv_us: r.next_u64(),
            host_send_us: r.next_u64(),
        }),
        5 => Control::KeyframeRequest(KeyframeRequest {
            stream_id: r.u8(),
            reason: r.pick(KeyframeReason::ALL),
        }),
        6 => Control::InvalidateReferences(InvalidateReferences {
            stream_id: r.u8(),
            first_frame: r.u32(),
            last_frame: r.u32(),
        }),
        7 => Control::Stats(StatsReport {
            period_ms: r.u32(),
            frames_received: r.u32(),
            frames_decoded: r.u32(),
            frames_lost: r.u32(),
            bytes_received: r.next_u64(),
            rtt_us: r.u32(),
            clock_offset_us: r.next_u64() as i64,
            decode_p50_us: r.u32(),
            present_p50_us: r.u32(),
        }),
        _ => {
            let reason = match r.below(6) {
                0 => GoodbyeReason::Normal,
                1 => GoodbyeReason::VersionMismatch {
                    min_version: r.u16(),
                    max_version: r.u16(),
                },
                2 => GoodbyeReason::ProtocolError,
                3 => GoodbyeReason::Timeout,
                4 => GoodbyeReason::HostShutdown,
                _ => GoodbyeReason::Refused,
            };
            Control::Goodbye(Goodbye {
                reason,
                message: r.string(16),
            })
        }
    }
}

fn gen_f32(r: &mut SplitMix64) -> f32 {
    loop {
        let v = match r.below(3) {
            0 => f32::from_bits(r.u32()),
            1 => (r.u32() % 8000) as f32 / 4.0,
            _ => r.pick(&[0.0, -0.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45]),
        };
        if v.is_finite() {
            return v;
        }
    }
}

fn gen_input_event(r: &mut SplitMix64) -> InputEvent {
    match r.below(11) {
        0 => {
            let (code, keysym) = match r.below(3) {
                0 => (r.range(1, 0xFFFF) as u16, 0),
                1 => (0, r.range(1, u32::MAX as u64) as u32),
                _ => (
                    r.range(1, 0xFFFF) as u16,
                    r.range(1, u32::MAX as u64) as u32,
                ),
            };
            InputEvent::Key(KeyEvent {
                code,
                keysym,
                modifiers: Modifiers(r.u16()),
                pressed: r.bool(),
            })
        }
        1 => InputEvent::PointerMove {
            x: r.u32() as i32,
            y: r.u32() as i32,
        },
        2 => InputEvent::PointerRelative {
            dx: r.u32() as i32,
            dy: r.u32() as i32,
        },
        3 => InputEvent::Button {
            button: MouseButton(r.range(1, 255) as u8),
            pressed: r.bool(),
        },
        4 => InputEvent::Scroll {
            dx: r.u32() as i32,
            dy: r.u32() as i32,
        },
        5 => InputEvent::Pen(PenEvent {
            tool: r.pick(PenTool::ALL),
            x: gen_f32(r),
            y: gen_f32(r),
            pressure: r.u16(),
            tilt_x: r.range(0, 2 * MAX_TILT as u64) as i16 - MAX_TILT,
            tilt_y: r.range(0, 2 * MAX_TILT as u64) as i16 - MAX_TILT,
            rotation: r.range(0, ROTATION_RANGE as u64 - 1) as u16,
            buttons: PenButtons(r.u8()),
            contact: r.pick(PenContact::ALL),
        }),
        6 => InputEvent::Jog {
            delta: r.u16() as i16,
        },
        7 => InputEvent::Shuttle {
            position: r.range(0, 2 * SHUTTLE_MAX as u64) as i8 - SHUTTLE_MAX,
        },
        8 => InputEvent::ControllerButton {
            index: r.u8(),
            pressed: r.bool(),
        },
        9 => InputEvent::Probe { id: r.u32().max(1) },
        _ => InputEvent::ReleaseAll,
    }
}

fn gen_message(r: &mut SplitMix64) -> Message {
    match r.below(6) {
        0 => Message::Control(gen_control(r)),
        1 => {
            let count = r.range(1, MAX_FRAGMENTS as u64) as u16;
            let len = r.below(40);
            Message::Video(VideoFragment {
                stream_id: r.u8(),
                frame: r.u32(),
                keyframe: r.bool(),
                fragment_index: r.below(count as usize) as u16,
                fragment_count: count,
                data_fragments: r.range(1, count as u64) as u16,
                au_len: r.u32(),
                times: r.bool().then(|| HostStageTimes {
                    capture_start: HostMicros(r.next_u64()),
                    capture_end: HostMicros(r.next_u64()),
                    convert_end: HostMicros(r.next_u64()),
                    encode_end: HostMicros(r.next_u64()),
                    send: HostMicros(r.next_u64()),
                }),
                damage: None,
                payload: r.bytes(len),
            })
        }
        2 => {
            let len = r.below(40);
            Message::Audio(AudioPacket {
                sequence: r.u32(),
                media_time: MediaTime::audio(r.next_u64()),
                layout: r.pick(ChannelLayout::ALL),
                codec: r.pick(AudioCodec::ALL),
                capture_us: HostMicros(r.next_u64()),
                payload: r.bytes(len),
            })
        }
        3 => Message::Input(InputMessage {
            seq: r.next_u64(),
            viewer_time_us: r.next_u64(),
            event: gen_input_event(r),
        }),
        4 => {
            let (w, h) = (r.below(5) as u16, r.below(5) as u16);
            let hot = |r: &mut SplitMix64, side: u16| {
                if side == 0 {
                    r.u16()
                } else {
                    r.below(side as usize) as u16
                }
            };
            Message::CursorShape(CursorShape {
                id: r.u32(),
                width: w,
                height: h,
                hot_x: hot(r, w),
                hot_y: hot(r, h),
                rgba: r.bytes(w as usize * h as usize * 4),
            })
        }
        _ => Message::CursorPosition(CursorPosition {
            id: r.u32(),
            x: r.u32() as i32,
            y: r.u32() as i32,
            visible: r.bool(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// Random bytes, biased so that the first bytes are often a valid message tag and a valid
/// sub-tag, letting the decoder get past the first switch.
fn random_input(r: &mut SplitMix64, out: &mut Vec<u8>) {
    out.clear();
    let len = if r.chance(1, 2) {
        r.below(40)
    } else {
        r.below(MAX_RANDOM_LEN)
    };
    // Eight bytes per PRNG call: the test is built without optimisation, so per-byte work is
    // what costs. In the first 32 bytes (where the tags, enum values and booleans of every
    // message lie) about one byte in four is made small, to hit those values more often.
    while out.len() < len {
        out.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    out.truncate(len);
    for chunk in out[..len.min(32)].chunks_mut(8) {
        let small = r.next_u64();
        for (k, b) in chunk.iter_mut().enumerate() {
            let s = (small >> (8 * k)) as u8;
            if s & 3 == 0 {
                *b = (s >> 2) % 11;
            }
        }
    }
    if len == 0 || r.chance(1, 10) {
        return;
    }
    let tag = r.range(1, 6) as u8;
    out[0] = tag;
    match tag {
        1 if len > 1 => out[1] = r.below(9) as u8,
        // Input event tag after seq and time.
        4 if len > 17 => out[17] = r.below(10) as u8,
        _ => {}
    }
}

const INTERESTING_U8: &[u8] = &[0, 1, 2, 7, 8, 9, 10, 0x7F, 0x80, 0xFE, 0xFF];
const INTERESTING_U32: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    0xFF,
    0x100,
    256,
    257,
    1024,
    1025,
    4096,
    4097,
    16384,
    16385,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    262_144,
    262_145,
    1 << 20,
    (1 << 20) + 1,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
];

/// Applies one to four mutations to `buf`, using `other` as the splice donor.
fn mutate(r: &mut SplitMix64, buf: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..r.range(1, 4) {
        let len = buf.len();
        match r.below(8) {
            // Bit flip.
            0 if len > 0 => {
                let i = r.below(len);
                buf[i] ^= 1 << r.below(8);
            }
            // Byte replacement.
            1 if len > 0 => {
                let i = r.below(len);
                buf[i] = if r.bool() {
                    r.pick(INTERESTING_U8)
                } else {
                    r.u8()
                };
            }
            // Insertion of 1..=4 bytes.
            2 => {
                let i = r.below(len + 1);
                for _ in 0..r.range(1, 4) {
                    buf.insert(i, r.u8());
                }
            }
            // Deletion of 1..=4 bytes.
            3 if len > 0 => {
                let i = r.below(len);
                let n = r.range(1, 4) as usize;
                buf.drain(i..(i + n).min(len));
            }
            // Truncation.
            4 => buf.truncate(r.below(len + 1)),
            // Length-field corruption: a u16 or u32 that looks like a length.
            5 if len >= 2 => {
                let v = r.pick(INTERESTING_U32);
                let v = if r.bool() {
                    v.wrapping_add(r.below(3) as u32).wrapping_sub(1)
                } else {
                    v
                };
                if len >= 4 && r.bool() {
                    let i = r.below(len - 3);
                    buf[i..i + 4].copy_from_slice(&v.to_le_bytes());
                } else {
                    let i = r.below(len - 1);
                    buf[i..i + 2].copy_from_slice(&(v as u16).to_le_bytes());
                }
            }
            // Splice: a prefix of this message and a suffix of another.
            6 => {
                buf.truncate(r.below(len + 1));
                let from = r.below(other.len() + 1);
                buf.extend_from_slice(&other[from..]);
            }
            // Append bytes (trailing data) or another whole message.
            _ => {
                if r.bool() {
                    buf.extend_from_slice(other);
                } else {
                    let n = r.range(1, 4) as usize;
                    buf.extend((0..n).map(|_| r.u8()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Counts {
    inputs: u64,
    ok: u64,
    err: u64,
    truncated: u64,
    unknown_tag: u64,
    invalid: u64,
    too_large: u64,
    trailing: u64,
    frames_ok: u64,
    frames_err: u64,
    frames_pending: u64,
}

/// Decodes `input` directly and through a frame reader; checks they agree.
fn check_one(r: &mut SplitMix64, input: &[u8], sentinel: &Message, counts: &mut Counts) {
    counts.inputs += 1;
    let direct = Message::from_bytes(input);
    match &direct {
        Ok(m) => {
            counts.ok += 1;
            // Canonical encoding: what decodes re-encodes to exactly the input.
            assert_eq!(m.to_bytes(), input, "decoded {m:?} re-encodes differently");
        }
        Err(e) => {
            counts.err += 1;
            match e {
                DecodeError::Truncated { .. } => counts.truncated += 1,
                DecodeError::UnknownTag { .. } => counts.unknown_tag += 1,
                DecodeError::Invalid { .. } => counts.invalid += 1,
                DecodeError::TooLarge { .. } => counts.too_large += 1,
                DecodeError::TrailingBytes { .. } => counts.trailing += 1,
            }
        }
    }

    // The same bytes as a frame, followed by a valid sentinel frame, fed in random chunks.
    let mut stream = Vec::with_capacity(input.len() + 64);
    let honest_header = !r.chance(1, 8);
    if honest_header {
        stream.extend_from_slice(&(input.len() as u32).to_le_bytes());
    } else {
        let v = r.pick(INTERESTING_U32).wrapping_add(r.below(3) as u32);
        stream.extend_from_slice(&v.to_le_bytes());
    }
    stream.extend_from_slice(input);
    encode_frame(sentinel, &mut stream);
    let max_len = if r.chance(1, 4) { r.below(64) } else { 1 << 20 };
    let mut reader = FrameReader::new(max_len);
    let mut results = Vec::new();
    let mut pos = 0;
    'feed: while pos < stream.len() {
        let n = match r.below(4) {
            0 => 1,
            1 => r.range(1, 8) as usize,
            2 => r.range(1, 64) as usize,
            _ => stream.len(),
        }
        .min(stream.len() - pos);
        reader.push(&stream[pos..pos + n]);
        pos += n;
        loop {
            match reader.next_message() {
                Ok(Some(m)) => results.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    results.push(Err(e));
                    // A stream with an error is dead; the session closes it.
                    break 'feed;
                }
            }
        }
    }
    for res in &results {
        match res {
            Ok(_) => counts.frames_ok += 1,
            Err(_) => counts.frames_err += 1,
        }
    }
    if results.is_empty() {
        counts.frames_pending += 1;
    }
    if honest_header && input.len() <= max_len {
        // The first frame is the input: it must decode exactly as directly.
        assert_eq!(results.first(), Some(&direct), "frame reader disagrees");
        if direct.is_ok() {
            // The reader is positioned exactly after the first frame: the sentinel comes next.
            let second = results.get(1).expect("sentinel frame missing");
            if sentinel.to_bytes().len() <= max_len {
                assert_eq!(second, &Ok(sentinel.clone()), "sentinel frame corrupted");
            } else {
                assert!(matches!(second, Err(DecodeError::TooLarge { .. })));
            }
            assert_eq!(results.len(), 2, "expected two frames: {results:?}");
        } else {
            // Decoding stops at the first error.
            assert_eq!(results.len(), 1, "{results:?}");
        }
    } else if honest_header {
        assert!(
            matches!(
                results.first(),
                Some(Err(DecodeError::TooLarge { what: "frame", .. }))
            ),
            "frame over the limit not refused: {results:?}"
        );
    }
    for m in results.iter().flatten() {
        assert_eq!(Message::from_bytes(&m.to_bytes()).as_ref(), Ok(m));
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn decoder_survives_a_million_inputs() {
    let seed = env_u64("CODEC_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let total = env_u64("CODEC_FUZZ_INPUTS")
        .unwrap_or(MIN_INPUTS)
        .max(MIN_INPUTS);
    let mut rng = SplitMix64(seed);

    // A pool of valid encodings to mutate, every message type represented.
    let pool: Vec<Vec<u8>> = (0..512).map(|_| gen_message(&mut rng).to_bytes()).collect();
    for b in &pool {
        assert!(
            Message::from_bytes(b).is_ok(),
            "generator made an invalid message"
        );
    }
    let sentinel = Message::Control(Control::Ping(Ping {
        seq: 0xC0FFEE,
        viewer_send_us: 42,
    }));

    let started = Instant::now();
    let mut counts = Counts::default();
    let mut input = Vec::with_capacity(MAX_RANDOM_LEN + 64);
    for i in 0..total {
        if i % 2 == 0 {
            random_input(&mut rng, &mut input);
        } else {
            input.clear();
            input.extend_from_slice(&pool[rng.below(pool.len())]);
            let other = &pool[rng.below(pool.len())];
            mutate(&mut rng, &mut input, other);
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            check_one(&mut rng, &input, &sentinel, &mut counts)
        }));
        if let Err(panic) = result {
            eprintln!(
                "codec_fuzz: input #{i} (seed {seed:#x}) failed; {} bytes: {:02x?}",
                input.len(),
                input
            );
            resume_unwind(panic);
        }
    }
    let elapsed = started.elapsed();

    println!(
        "decoded {} inputs: {} ok, {} errors ({} truncated, {} unknown tag, {} invalid, \
         {} too large, {} trailing bytes) in {:.2?}",
        counts.inputs,
        counts.ok,
        counts.err,
        counts.truncated,
        counts.unknown_tag,
        counts.invalid,
        counts.too_large,
        counts.trailing,
        elapsed
    );
    println!(
        "frame reader: {} frames ok, {} errors, {} streams still waiting for bytes",
        counts.frames_ok, counts.frames_err, counts.frames_pending
    );

    assert!(counts.inputs >= MIN_INPUTS, "only {} inputs", counts.inputs);
    assert_eq!(counts.ok + counts.err, counts.inputs);
    assert!(counts.ok > 0, "no input decoded: the generator is broken");
    assert!(counts.err > 0, "every input decoded: the mutator is broken");
    // Every error kind was reached, so the mutations go past the first byte.
    assert!(counts.truncated > 0 && counts.unknown_tag > 0 && counts.invalid > 0);
    assert!(counts.too_large > 0 && counts.trailing > 0);
    assert!(counts.frames_ok > 0 && counts.frames_err > 0);
}
