//! Audio in the session (revision 3): the configuration goes before the packets, and nothing
//! about audio reaches a viewer that speaks an older revision or did not ask for the layout.

use std::time::Duration;

use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::{
    AudioCodec, AudioConfig, AudioLayouts, AudioPacket, Capabilities, ChannelLayout, Control,
    Message, AUDIO_SAMPLE_RATE,
};
use sightline_protocol::session::{AudioRefused, AUDIO_MIN_VERSION};
use sightline_protocol::testing::{Pair, PairConfig};
use sightline_protocol::time::{HostMicros, MediaTime};
use sightline_protocol::{Channel, CloseReason, HostConfig, HostEvent, ViewerConfig, ViewerEvent};

fn pcm_stereo() -> AudioConfig {
    AudioConfig {
        stream_id: 0,
        layout: ChannelLayout::Stereo,
        codec: AudioCodec::Pcm24,
        sample_rate: AUDIO_SAMPLE_RATE,
        frame_samples: 120,
        bitrate_bps: 2_304_000,
        speakers: ChannelOrder::Wave.speakers(ChannelLayout::Stereo).to_vec(),
        opus: None,
    }
}

fn packet(seq: u32) -> AudioPacket {
    AudioPacket {
        sequence: seq,
        media_time: MediaTime::audio(seq as u64 * 120),
        layout: ChannelLayout::Stereo,
        codec: AudioCodec::Pcm24,
        capture_us: HostMicros(1_000 + seq as u64),
        payload: vec![0; 720],
    }
}

fn pair(viewer: ViewerConfig) -> Pair {
    let mut p = Pair::new(PairConfig {
        host: HostConfig::default(),
        viewer,
        ..PairConfig::default()
    });
    p.run_for(Duration::from_millis(50));
    assert!(p.host.is_established() && p.viewer.is_established());
    p
}

fn viewer_audio(p: &Pair) -> (Vec<AudioConfig>, Vec<AudioPacket>) {
    let mut cfgs = Vec::new();
    let mut pkts = Vec::new();
    for (_, e) in &p.viewer_events {
        match e {
            ViewerEvent::AudioConfig(c) => cfgs.push(c.clone()),
            ViewerEvent::Audio(a) => pkts.push(a.clone()),
            _ => {}
        }
    }
    (cfgs, pkts)
}

#[test]
fn configuration_then_packets_reach_a_revision_3_viewer() {
    let mut p = pair(ViewerConfig::default());
    assert_eq!(p.host.version(), Some(AUDIO_MIN_VERSION));
    assert_eq!(p.host.audio_allowed(ChannelLayout::Surround71), Ok(()));
    p.host.send_audio_config(pcm_stereo()).unwrap();
    for seq in 0..5 {
        p.host.send_audio(packet(seq));
    }
    p.run_for(Duration::from_millis(50));
    let (cfgs, pkts) = viewer_audio(&p);
    assert_eq!(cfgs, vec![pcm_stereo()]);
    assert_eq!(pkts.len(), 5);
    assert_eq!(pkts[3], packet(3));
    assert!(viewer_closed(&p).is_empty());
}

#[test]
fn a_revision_2_viewer_gets_no_audio_at_all() {
    let mut p = pair(ViewerConfig {
        max_version: 2,
        ..ViewerConfig::default()
    });
    assert_eq!(p.host.version(), Some(2));
    assert_eq!(
        p.host.audio_allowed(ChannelLayout::Stereo),
        Err(AudioRefused::OldRevision(2))
    );
    assert_eq!(
        p.host.send_audio_config(pcm_stereo()),
        Err(AudioRefused::OldRevision(2))
    );
    p.host.send_audio(packet(0));
    p.run_for(Duration::from_millis(50));
    assert_eq!(viewer_audio(&p), (vec![], vec![]));
    assert!(viewer_closed(&p).is_empty());
}

#[test]
fn layouts_the_viewer_did_not_advertise_are_refused() {
    let mut p = pair(ViewerConfig {
        capabilities: Capabilities {
            audio_layouts: AudioLayouts::STEREO,
            ..Capabilities::ALL
        },
        ..ViewerConfig::default()
    });
    assert_eq!(
        p.host.audio_allowed(ChannelLayout::Surround51),
        Err(AudioRefused::LayoutNotNegotiated("5.1"))
    );
    let mut cfg = pcm_stereo();
    cfg.layout = ChannelLayout::Surround51;
    cfg.speakers = ChannelOrder::Alsa
        .speakers(ChannelLayout::Surround51)
        .to_vec();
    assert!(p.host.send_audio_config(cfg).is_err());
    // A viewer with no layouts at all (`viewer --no-audio`).
    let p = pair(ViewerConfig {
        capabilities: Capabilities {
            audio_layouts: AudioLayouts::EMPTY,
            ..Capabilities::ALL
        },
        ..ViewerConfig::default()
    });
    assert_eq!(
        p.host.audio_allowed(ChannelLayout::Stereo),
        Err(AudioRefused::LayoutNotNegotiated("stereo"))
    );
}

#[test]
fn an_invalid_configuration_is_refused_on_the_host_before_it_is_sent() {
    let mut p = pair(ViewerConfig::default());
    let mut cfg = pcm_stereo();
    cfg.speakers = vec![Speaker::FrontLeft, Speaker::FrontLeft];
    assert!(matches!(
        p.host.send_audio_config(cfg),
        Err(AudioRefused::Invalid(_))
    ));
    p.run_for(Duration::from_millis(50));
    assert!(viewer_closed(&p).is_empty());
}

#[test]
fn audio_configuration_from_the_viewer_is_a_violation() {
    let mut p = pair(ViewerConfig::default());
    let mut bytes = Vec::new();
    sightline_protocol::coding::encode_frame(
        &Message::Control(Control::AudioConfig(pcm_stereo())),
        &mut bytes,
    );
    let now = p.now;
    p.host.handle_stream(now, Channel::Control, &bytes);
    p.run_for(Duration::from_millis(20));
    let closed: Vec<_> = p
        .host_events
        .iter()
        .filter_map(|(_, e)| match e {
            HostEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&closed[..], [CloseReason::ProtocolViolation(m)] if m.contains("AudioConfig")),
        "{closed:?}"
    );
}

fn viewer_closed(p: &Pair) -> Vec<CloseReason> {
    p.viewer_events
        .iter()
        .filter_map(|(_, e)| match e {
            ViewerEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}
