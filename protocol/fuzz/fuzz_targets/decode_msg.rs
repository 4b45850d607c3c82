//! Decodes arbitrary bytes as one message (datagram rules) and as a framed stream.
//!
//! Beyond "never panics": whatever decodes re-encodes to exactly the same bytes, and the
//! `FrameReader` agrees with `Message::from_bytes` frame by frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::coding::{Decode, Encode, FrameReader, DEFAULT_MAX_MESSAGE_LEN};
use sightline_protocol::Message;

fuzz_target!(|data: &[u8]| {
    // The whole input as one datagram.
    if let Ok(m) = Message::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "non-canonical decode of {m:?}");
    }

    // The input as a stream, after a one-byte header that picks the chunk size and the limit.
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(knobs & 0x3F) + 1;
    let max_len = if knobs & 0x40 != 0 {
        64
    } else {
        DEFAULT_MAX_MESSAGE_LEN
    };
    let mut reader = FrameReader::new(max_len);
    let mut offset = 0; // start of the next frame in `stream`
    for piece in stream.chunks(chunk) {
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(m)) => {
                    let len =
                        u32::from_le_bytes(stream[offset..offset + 4].try_into().unwrap()) as usize;
                    let body = &stream[offset + 4..offset + 4 + len];
                    assert_eq!(m.to_bytes(), body, "frame decoded to {m:?}");
                    offset += 4 + len;
                }
                Ok(None) => break,
                // A stream with an error is closed by the session.
                Err(_) => return,
            }
        }
    }
    assert_eq!(reader.buffered(), stream.len() - offset);
});
