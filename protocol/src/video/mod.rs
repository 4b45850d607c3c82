//! Video transport: access units cut into datagram-sized fragments with Reed–Solomon parity
//! ([`packetize`]), and put back together on the viewer ([`Reassembler`]), which recovers lost
//! fragments from parity, drops frames that went stale, and reports losses so the host can
//! recover without waiting.

mod packetize;
mod reassemble;

pub use packetize::{
    data_fragments, data_payload, packetize, packetize_with_damage, packetize_with_parity,
    FecConfig, PacketizeError,
};
pub use reassemble::{
    AccessUnit, Reassembler, ReassemblerConfig, ReassemblyEvent, ReassemblyStats,
};

/// Whether frame number `a` is newer than `b`, allowing for wrap-around.
pub fn frame_newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Bytes a fragment adds around its payload when it carries stage times (the worst case without
/// a damage list), so callers can size payloads from the transport's datagram limit.
/// [`packetize_with_damage`] takes a damage list's bytes off the payload itself.
pub const FRAGMENT_OVERHEAD: usize = 1 /* message tag */ + 1 + 4 + 1 + 2 + 2 + 2 + 4 + 40 + 2;
