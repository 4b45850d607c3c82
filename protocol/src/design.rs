//! # Design manual
//!
//! How Sightline maps a remote-display session onto QUIC, and why. This module has no code.
//!
//! ## One connection, three kinds of channel
//!
//! | channel | QUIC primitive | carries | why |
//! |---|---|---|---|
//! | control | one bidirectional stream opened by the viewer | hello/welcome, stream config, ping/pong, keyframe and reference-invalidation requests, stats, cursor shapes, goodbye | small, must arrive, order matters |
//! | input | one unidirectional viewer → host stream | [`crate::msg::InputMessage`] | presses and releases are never lost or reordered, and never wait behind video |
//! | media | datagrams | video fragments, audio packets, cursor positions | latency beats reliability: a late frame is worthless |
//!
//! Stream messages are framed as `len: u32` + message ([`crate::coding`]); a datagram holds one
//! message. The control stream is opened by the viewer and its first message is `Hello`.
//!
//! ## Versioning
//!
//! Two layers:
//! * **ALPN** ([`crate::ALPN`], `sightline/1`) names the wire-incompatible generation. A viewer
//!   that does not offer it is refused in the TLS handshake with `no_application_protocol`, before
//!   any message is parsed. A future incompatible format gets `sightline/2`, and a viewer may
//!   offer both.
//! * **Revisions** inside a generation are negotiated by `Hello { min_version, max_version }`:
//!   the host picks the newest common revision and says so in `Welcome`. No common revision → the
//!   host sends `Goodbye(VersionMismatch { host's range })` and both sides report
//!   [`crate::session::CloseReason::VersionMismatch`] naming both ranges. Compatible additions use
//!   new capability bits (unknown bits drop out of the intersection) or hello extensions
//!   (unknown ids are ignored); new message tags require a higher revision.
//!
//! ## Capabilities
//!
//! The viewer advertises what it can decode and send; the host answers with the intersection of
//! that and what it offers. Nothing outside the intersection is used: input of a kind that was not
//! negotiated is refused on the viewer (an error to the caller) and dropped on the host (counted).
//! A view-only session is a host that offers no input kinds.
//!
//! Video formats are negotiated through the same flags: the viewer sets the codecs, bit depths
//! and chroma formats its decoders handle; the host offers the union of the formats its encoders
//! produced in a start-up test encode, and encodes the best of its formats (in its own order of
//! preference) that every connected viewer's intersection contains — one encode fanned out to
//! all. A viewer that cannot decode 10-bit or 4:4:4 gets the next format down, ending at 8-bit
//! 4:2:0 H.264, which every viewer decodes. The [`StreamConfig`](crate::msg::StreamConfig)
//! before the first frame (and on every change) says which format, matrix, range, primaries and
//! transfer the stream has; the bitstream's VUI says the same.
//!
//! ## Time
//!
//! See [`crate::time`]. Every frame carries host stage timestamps (capture start/end, convert,
//! encode, send) on the host clock; the viewer adds its own (first/last packet, reassembled,
//! decoded, presented) and converts with the ping/pong clock-offset estimate. The estimate's
//! error is bounded by half the round trip of the best sample; that bound is reported with it,
//! so a latency breakdown can say how much of "network" is uncertain.
//!
//! ## Input rules
//!
//! See [`crate::input`]. Motion may be coalesced while it waits for the transport; presses,
//! releases and pen contact changes never are. Every input message has a strictly increasing
//! sequence number; the host drops repeats, which makes redundant sending (e.g. recent events
//! repeated in datagrams) safe to add later. The host tracks what is held and releases it when
//! the viewer asks (`ReleaseAll`, sent on focus loss), when nothing has been heard from the
//! viewer for [`crate::HostConfig::input_release_after`] (1 s: the viewer pings every 250 ms, so
//! silence means a dead path), and when the session ends for any reason.
//!
//! ## Loss policy
//!
//! * Control and input ride reliable streams: QUIC retransmits them. They are small, so the cost
//!   is one RTT of delay on loss, never a loss.
//! * Video fragments ride datagrams. A frame whose fragments do not all arrive before a newer
//!   frame completes is dropped, not waited for; the viewer then asks the host for recovery
//!   (`InvalidateReferences` when the encoder can avoid the lost frames, `KeyframeRequest`
//!   otherwise), so the picture always recovers. Forward error correction is layered on the
//!   fragments so most single losses cost nothing.
//! * Audio packets are self-contained 5–10 ms frames in datagrams; loss is concealed by the
//!   decoder.
//!
//! ## Audio transport
//!
//! Audio is revision 3. The host announces the stream with [`crate::msg::AudioConfig`] on the
//! control stream (layout, codec, frame size, bitrate, and the speaker of every decoded channel,
//! plus the Opus stream mapping), so the viewer opens its decoder and output device before the
//! first packet; packets that overtake the configuration are dropped. Each
//! [`crate::msg::AudioPacket`] is one datagram: a sequence number, the media time of its first
//! sample (a 48 kHz sample counter, so consecutive packets abut exactly), the host capture time
//! (latency accounting and A/V sync), and either an Opus multistream packet (5 or 10 ms,
//! restricted-low-delay, surround-coded for 5.1/7.1) or lossless 24-bit PCM (as many samples
//! as fit a datagram: 40 for 7.1, 120 for stereo at 1,200 bytes). A revision 1–2 viewer never
//! gets either, and a viewer gets only layouts it advertised.
//!
//! **Channel order is explicit.** Opus' surround mapping wants Vorbis order (7.1: FL FC FR SL
//! SR BL BR LFE), PulseAudio and WAVE use FL FR FC LFE BL BR SL SR, ALSA FL FR BL BR FC LFE SL
//! SR. The configuration names each decoded channel's speaker and both sides permute by name
//! ([`crate::audio::layout`]); no side assumes another's order.
//!
//! **Playback** runs through the adaptive jitter buffer ([`crate::audio::jitter`]): packets are
//! placed by media time, decoded at playout, concealed when lost, and the delay follows the
//! worst recent arrival (grow by a frame on an underrun, shrink by single samples when the
//! margin has been high for 2 s). The same control absorbs clock drift between the host's
//! capture device and the viewer's output device, so the delay does not creep over hours.
//! Audio is held back further only to meet a later picture ([`crate::audio::sync`]); video is
//! never delayed for audio.
//!
//! ## Video transport
//!
//! An encoded access unit is cut into fragments that each fit one datagram
//! ([`crate::video::packetize`]): `k` data fragments of at most the datagram payload (the
//! transport's `max_datagram_size()` minus [`crate::video::FRAGMENT_OVERHEAD`]), then
//! `ceil(k × ratio)` (at least one) Reed–Solomon parity fragments over the data fragments
//! zero-padded to equal length (default ratio 10 %). Any `k` of the `k + parity` fragments
//! rebuild the frame. Fragment 0 and every parity fragment carry the host stage times, so they
//! survive the loss of fragment 0. The encoder's slices are limited to ~1,100 bytes so that a
//! slice rarely spans two fragments.
//!
//! The viewer's [`crate::video::Reassembler`] completes a frame as soon as `k` fragments are in;
//! when a newer frame completes, every older incomplete frame is given up (it can no longer be
//! shown in order, and waiting only adds latency); an incomplete frame with nothing newer is given
//! up when none of its fragments arrived for 100 ms. A given-up frame breaks the decoder's
//! references, so the viewer shows nothing new until a keyframe and asks the host for one at
//! once (rate-limited to one per 150 ms, repeated after 300 ms or three round trips if the
//! keyframe itself is lost, but not while a keyframe's fragments are still arriving; the host
//! ignores requests while a keyframe waits in that viewer's queue). Reference invalidation instead of a
//! keyframe is in the protocol (`InvalidateReferences`) for encoders that can honour it; openh264
//! as configured cannot, so its capability says so.
//!
//! Why datagrams and not one QUIC stream per frame: a stream delivers nothing of a frame until
//! every lost packet of it has been retransmitted (one RTT or more), so under loss every affected
//! frame is late by at least an RTT; resetting stale streams bounds that but still loses the
//! frame. Datagrams with parity rebuild most single losses with no round trip at all, and a
//! frame that cannot be rebuilt is known lost as soon as the next frame completes.
//!
//! Measured (`docs/benchmarks.md`, real quinn through the project's WAN relay, rtt 30 ms, 1 %
//! loss, BBR): datagrams + 10 % parity delivered 100 % of frames at p99 18 ms; one stream per
//! frame delivered 93.8 % (a lost packet costs a retransmission, ~51 ms, by which time newer
//! frames have completed). The same measurement shows the condition for this to hold: with
//! quinn's default Cubic, random loss collapses the window and datagrams queue for seconds in
//! quinn's send buffer. So the host keeps that buffer small (stale datagrams are dropped
//! oldest-first), and congestion-aware rate control — a loss-tolerant controller or the encoder
//! following the path, with frames dropped when the datagram queue backs up — belongs to the
//! resilience work. Parity should also follow the measured loss (10 % with at least one parity
//! fragment loses 5 % of frames at 5 % loss).
//!
//! The host encodes once and fans out to every session through a bounded broadcast channel: a
//! session that falls behind skips frames (and gets a keyframe) rather than building a queue.
//! Nothing is captured or encoded while the screen is still (DAMAGE on X11).
//!
//! A frame of which no fragment arrived at all (every fragment lost, or never sent to this
//! viewer) is noticed by the gap in frame numbers when the next frame completes, and counts as
//! lost like a partial one: the decoder never takes a frame whose references it lacks.
//!
//! ## Following the path: rate, parity, priorities
//!
//! See [`crate::congestion`] and [`crate::pacing`]. Per session, on the host:
//!
//! * **Priorities.** Datagrams that are not video (audio, cursor positions) go to QUIC at
//!   once; video waits in the host's own queue and is handed over only while QUIC holds less
//!   than ~5 ms of it at the rate QUIC has been sending. quinn sends datagrams first-in
//!   first-out and ahead of stream data, so without this a keyframe burst would delay audio,
//!   the cursor and the control stream (clock-sync answers) by its whole length. Input travels
//!   the other way (viewer → host), where nothing bulky competes with it. Video that waits more
//!   than 250 ms is dropped, whole frames, and the encoder makes a keyframe.
//! * **Rate.** A controller fed every 50 ms with the queue's sojourn time, QUIC's RTT, loss and
//!   delivered rate keeps the encoder's target below what the path delivers, so no standing
//!   queue builds; random loss does not lower it (BBR on the QUIC side likewise). The encoder's
//!   bitrate changes on the running encoder, without a keyframe (openh264); the FFmpeg encoders
//!   of 10-bit streams reopen for a new bitrate (a keyframe), so they follow the target only in
//!   steps of 15 % or more, down at most once a second, up after 3 s. Several viewers: the encoder
//!   follows the lowest target (the slowest path sets the quality for all; a viewer whose path
//!   is dead does not count). A per-viewer encode (or simulcast layers) would lift that limit
//!   at the cost of encoding several times.
//! * **Parity.** Each frame gets the fewest parity fragments that keep its loss probability
//!   under 5·10⁻⁵ at the measured loss (×1.5 for burstiness), at least two: on a clean path
//!   ~2 % for a 270-fragment keyframe, at 1 % loss ~5 %, at 5 % loss ~16 % (small frames: two
//!   or three parity fragments). `host-agent --fec 0.1` fixes the share instead.
//! * **Backlog.** While a viewer's queue holds more than ~40 ms of video (the encoder made more
//!   than the target, e.g. noise or a scene cut at a low rate), the encoder skips frames — a
//!   lower frame rate instead of a growing delay; with several viewers this slows the frame
//!   rate for all, like the bitrate.
//! * **Pacing.** Once a path pushed back, video leaves at most at 1.5 × the target, so a
//!   keyframe does not overflow a shallow router buffer; a path that never pushed back is not
//!   paced beyond QUIC's own pacing.
//! * **Dead path.** A viewer not heard from for 600 ms gets no video (and stops limiting the
//!   encoder) until it is heard again, then a keyframe.
//!
//! Recovery without a keyframe (reference invalidation, long-term references) is not used:
//! openh264 0.9 can do it only with per-frame decoder feedback of H.264 frame numbers and
//! long-term-reference marking (`ENCODER_LTR_RECOVERY_REQUEST`, `ENCODER_LTR_MARKING_FEEDBACK`),
//! which the protocol does not carry yet. Parity sized to the loss makes unrecoverable frames
//! rare instead; each one still costs a keyframe.
//!
//! ## Reconnecting
//!
//! See [`crate::reconnect`]. When the host is silent for 700 ms the viewer keeps the old
//! connection and also starts a fresh one every 250 ms on the same UDP socket (after a long
//! blackout QUIC's probe timer has backed off for seconds, a new handshake goes out at once);
//! whichever answers first carries on. The new hello names the old session in an extension, and
//! the host ends that session at once (same viewer certificate only). Input given while the
//! link is down is dropped, not delivered late; the host has released what was held after
//! 1 s of silence. The window stays open and says "reconnecting…"; `viewer --no-reconnect`
//! ends the session instead, `--reconnect-timeout SECS` bounds the attempts (default 60 s).
//!
//! ## Damage
//!
//! Each frame may say which rectangles of the source changed since the previous frame (at most
//! [`crate::damage::MAX_DAMAGE_RECTS`], aligned to the codec's block grid, carried by fragment 0
//! and the parity fragments behind a flag bit). It is sent only to viewers that offered the
//! [`crate::damage::EXT_DAMAGE_RECTS`] hello extension (older viewers refuse unknown fragment
//! flags); keyframes and unknown damage carry no list. A lossy encoder also changes decoded
//! pixels outside the list, so for codec frames it is a hint: the viewer compares each decoded
//! picture with the one it shows, repaints only what differs, and skips comparing inside the
//! listed rectangles. See [`crate::damage`].
//!
//! ## Lossless tiles and the fidelity proof
//!
//! Beside the video, the host may send *lossless tiles* on one reliable unidirectional stream
//! it opens (negotiated by the [`crate::tiles::EXT_LOSSLESS_TILES`] hello extension). The screen
//! is a grid of 64×64 cells, each owned by video or by tiles: small or short-lived changes go
//! as exact tiles at once (no video frame at all when nothing video-owned changed), sustained
//! or large motion goes to video, and a video cell still for 150 ms is refined to a tile within
//! a bandwidth budget. The viewer composes both into one GBR 4:4:4 picture by the rules in
//! [`crate::tiles`] (a tile wins at once; a hand-over to video waits for the named frame; a
//! reset makes everything video), and checks the host's per-cell XXH3 hashes against its own
//! pixels: all equal means the picture is proven bit-exact. Tiles are used only while every
//! connected viewer composes them (one encode serves all); a viewer that falls behind the tile
//! stream makes the lossless layer start over, as a lost frame asks for a keyframe.
//!
//!
//! Any message that does not decode, or arrives on the wrong channel or in the wrong state,
//! closes that session with [`crate::session::CloseReason::ProtocolViolation`] and a goodbye that
//! says why. One exception is a race, not a violation: media datagrams the host sends right after
//! accepting hello can overtake the welcome on the control stream, so the viewer silently drops
//! media datagrams that arrive before the welcome. Nothing from the network can panic the process, and one bad session never affects
//! another. Frames larger than the configured limit are refused as soon as their length is read,
//! before anything is buffered.
//!
//! ## Security
//!
//! The session runs over QUIC with TLS 1.3 only and `TLS13_AES_256_GCM_SHA384` as the only
//! session cipher (QUIC initial packets use AES-128 by RFC 9001; they carry only the handshake).
//! Both sides authenticate with certificates (see the `sightline-certs` crate); there is no
//! unauthenticated or plaintext mode.
