//! The pairing exchange's messages (ALPN sightline-pair/1): any bytes decode to a message or
//! an error, never a panic; whatever decodes re-encodes to the same bytes; a frame header over
//! the limit is refused before anything is read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::pair::{PairMessage, MAX_PAIR_MESSAGE_LEN};
use sightline_protocol::{Decode, Encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PairMessage::from_bytes(data) {
        assert_eq!(m.to_bytes(), data, "non-canonical decode of {m:?}");
        let frame = m.to_frame();
        assert_eq!(
            PairMessage::frame_len([frame[0], frame[1]]).unwrap(),
            frame.len() - 2
        );
    }
    if data.len() >= 2 {
        match PairMessage::frame_len([data[0], data[1]]) {
            Ok(len) => assert!(len <= MAX_PAIR_MESSAGE_LEN),
            Err(_) => {
                assert!(usize::from(u16::from_le_bytes([data[0], data[1]])) > MAX_PAIR_MESSAGE_LEN)
            }
        }
    }
});
