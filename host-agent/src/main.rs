//! `host-agent`: serves this workstation's display to authorized viewers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_certs::{AuthorizedViewers, Identity, Role};
use sightline_host::config::{self, DEFAULT_PORT};
use sightline_host::net::{HostEndpoint, NetConfig, NetEvent};
use sightline_protocol::msg::Capabilities;
use sightline_protocol::session::HostConfig;
use tokio::sync::mpsc;

/// Sightline host agent: serves this workstation's display over QUIC (TLS 1.3, AES-256-GCM) to
/// viewers whose certificates are authorized.
#[derive(Debug, Parser)]
#[command(name = "host-agent", version, after_help = AFTER_HELP)]
struct Args {
    /// UDP address to listen on (ADDR:PORT; a bare port or address is completed with the
    /// defaults).
    #[arg(long, default_value = "0.0.0.0:4433", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Directory holding the host identity (cert.pem, key.pem). Created on first start.
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// Authorized viewers file (one "FINGERPRINT NAME" per line), re-read on every connection.
    #[arg(long, value_name = "FILE")]
    authorized: Option<PathBuf>,
    /// Name shown to viewers (default: this machine's hostname).
    #[arg(long)]
    name: Option<String>,
    /// Most viewers at once.
    #[arg(long, default_value_t = 4)]
    max_sessions: usize,
    /// Seconds a connecting viewer may take to finish TLS and say hello.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Log filter (tracing EnvFilter syntax), overridden by RUST_LOG.
    #[arg(long, default_value = "info")]
    log: String,
}

const AFTER_HELP: &str = "\
Examples:
  host-agent                                   # listen on 0.0.0.0:4433 with default paths
  host-agent --listen 127.0.0.1:4433 --identity /etc/sightline/host --authorized /etc/sightline/authorized_viewers

Authorize a viewer (on the host):   certs authorize --authorized FILE --cert viewer-cert.pem --name alice
Print the host fingerprint:         certs fingerprint IDENTITY_DIR";

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(format!("expected ADDR:PORT, ADDR or PORT, got {s:?}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let identity_dir = args.identity.unwrap_or_else(config::default_identity_dir);
    let authorized_path = args
        .authorized
        .unwrap_or_else(config::default_authorized_file);
    let name = args.name.unwrap_or_else(config::machine_name);
    let (identity, created) = Identity::load_or_create(&identity_dir, Role::Host, &name)
        .with_context(|| format!("host identity in {}", identity_dir.display()))?;
    if created {
        tracing::info!(dir = %identity_dir.display(), "created a new host identity");
    }
    let authorized = AuthorizedViewers::load_or_empty(&authorized_path)
        .with_context(|| format!("authorized viewers in {}", authorized_path.display()))?;
    if authorized.is_empty() {
        tracing::warn!(
            file = %authorized_path.display(),
            "no viewer is authorized yet: every connection will be refused until you run \
             `certs authorize --authorized {} --cert VIEWER_CERT.pem`",
            authorized_path.display()
        );
    }

    let cfg = NetConfig {
        listen: args.listen,
        host_name: name,
        // Offer only what this build implements: the session and clock sync. Media and input
        // capabilities are added as their pipelines land.
        capabilities: Capabilities::default(),
        authorized_path,
        max_sessions: args.max_sessions.max(1),
        handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
        session: HostConfig::default(),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sightline-net")
        .build()?;
    rt.block_on(async move {
        let endpoint = HostEndpoint::bind(&identity, cfg)?;
        let addr = endpoint.local_addr()?;
        println!(
            "host-agent listening on {addr} (QUIC, TLS 1.3 AES-256-GCM)\nhost fingerprint: {}",
            identity.fingerprint()
        );
        let closer = endpoint.closer();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let serve = tokio::spawn(endpoint.serve(tx));
        let report = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    NetEvent::SessionStarted {
                        session_id,
                        remote,
                        authorized_as,
                        viewer_name,
                        fingerprint,
                        ..
                    } => println!(
                        "session {session_id:016x} started: viewer {viewer_name:?} \
                         (authorized as {authorized_as:?}, {fingerprint}) from {remote}"
                    ),
                    NetEvent::SessionEnded {
                        session_id, reason, ..
                    } => println!("session {session_id:016x} ended: {reason}"),
                    NetEvent::Refused {
                        remote,
                        stage,
                        reason,
                        ..
                    } => println!("refused {remote} at {stage}: {reason}"),
                    NetEvent::Input { .. } | NetEvent::Listening { .. } => {}
                }
            }
        });
        tokio::signal::ctrl_c().await.ok();
        println!("shutting down");
        closer.close(
            quinn::VarInt::from_u32(sightline_protocol::transport::CLOSE_HOST_SHUTDOWN),
            b"host shutting down",
        );
        closer.wait_idle().await;
        serve.abort();
        report.abort();
        anyhow::Ok(())
    })
}
