//! The host agent's security flags (audit log, pairing, limits) and the `host-agent pair`
//! command. Kept out of `main.rs` so the binary only wires them in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sightline_certs::Fingerprint;
use sightline_protocol::session::{HostConfig, RateLimits};

use crate::audit::AuditLog;
use crate::config;
use crate::limits::{ConnectLimits, PairingLimits};
use crate::security::SecurityOptions;

/// The first lines of `host-agent --print-config`.
pub const CONFIG_HEADER: &str = "Sightline host agent configuration (TOML).\n\
Every key is a host-agent flag in snake_case and means what the flag means (host-agent --help). \
Flags given on the command line override this file; an unknown key is an error. Commented-out \
keys show their default.";

/// Audit log, pairing and limits flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// Audit log (JSON lines: sessions with viewer, address, channels, bytes and end reason;
    /// refusals; pairing attempts; authorized-list changes). Default: audit.jsonl next to the
    /// authorized-viewers file. Reopened on SIGHUP (log rotation).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Whether viewers may pair with a one-time code from `host-agent pair` (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub pairing: bool,
    /// The pairing window file `host-agent pair` writes and the running host reads. Default:
    /// `pairing` next to the authorized-viewers file.
    #[arg(long, value_name = "FILE")]
    pub pairing_file: Option<PathBuf>,
    /// Seconds without any traffic from a viewer before its session is closed (viewers send
    /// keep-alives twice a second).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Input messages per second one viewer may send (a burst of twice as many is allowed);
    /// above it the session ends with a goodbye naming the limit. Each event counts twice when
    /// the viewer also sends datagram copies.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub max_input_rate: u32,
    /// Control messages (pings, stats, keyframe requests) per second one viewer may send (a
    /// burst of twice as many is allowed).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_control_rate: u32,
    /// New connections per second from one address (IPv6: one /64), checked before any TLS
    /// work; more are refused.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub connect_rate: u32,
    /// Connections from one address allowed in a burst above --connect-rate.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub connect_burst: u32,
    /// TLS handshakes in progress at once; beyond it new attempts are refused, and past half
    /// of it addresses must first answer a QUIC Retry (no spoofed sources).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_handshakes: usize,
}

/// `host-agent pair` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// How long the code stays valid, in seconds (at most 3600).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub ttl: u64,
    /// Authorize the viewer under this name (default: the name the viewer gives, followed by
    /// "(paired)").
    #[arg(long = "viewer-name", value_name = "NAME")]
    pub viewer_name: Option<String>,
    /// Wrong codes after which the code is burned.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_failures: u32,
    /// Close the open pairing window instead of opening one.
    #[arg(long)]
    pub close: bool,
}

/// The security parts of a running host.
#[derive(Debug, Clone)]
pub struct SecurityRuntime {
    /// For the endpoint.
    pub options: SecurityOptions,
    /// The audit log.
    pub audit: AuditLog,
}

/// Opens the audit log and builds the endpoint's security options.
pub fn open(args: &SecurityArgs, authorized: &Path) -> anyhow::Result<SecurityRuntime> {
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| config::default_audit_log(authorized));
    let audit = AuditLog::open(&audit_path)
        .with_context(|| format!("audit log {}", audit_path.display()))?;
    let pairing_file = args.pairing.then(|| {
        args.pairing_file
            .clone()
            .unwrap_or_else(|| config::default_pairing_file(authorized))
    });
    Ok(SecurityRuntime {
        options: SecurityOptions {
            audit: Some(audit.clone()),
            pairing_file,
            pairing: PairingLimits::default(),
            connect: ConnectLimits {
                per_address_per_s: args.connect_rate,
                per_address_burst: args.connect_burst,
                max_handshakes: args.max_handshakes.max(1),
            },
            revocation_check: Duration::from_secs(1),
        },
        audit,
    })
}

/// The session settings with the flags' idle timeout and rate limits.
pub fn session_config(args: &SecurityArgs, base: HostConfig) -> HostConfig {
    HostConfig {
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        rate_limits: RateLimits {
            input_per_s: args.max_input_rate,
            input_burst: args.max_input_rate.saturating_mul(2),
            control_per_s: args.max_control_rate,
            control_burst: args.max_control_rate.saturating_mul(2),
        },
        ..base
    }
}

impl SecurityRuntime {
    /// Records the start.
    pub fn started(&self, addr: SocketAddr, fingerprint: Fingerprint, config: Option<&Path>) {
        self.audit.record(
            "host_start",
            json!({
                "listen": addr.to_string(),
                "fingerprint": fingerprint.to_string(),
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "config": config.map(|p| p.display().to_string()),
                "pairing": self.options.pairing_file.is_some(),
            }),
        );
    }

    /// Records the stop.
    pub fn stopped(&self) {
        self.audit
            .record("host_stop", json!({"pid": std::process::id()}));
    }
}

/// Waits for Ctrl+C or SIGTERM (systemd's stop). Meanwhile, SIGHUP reopens the audit log
/// (after logrotate moved it).
pub async fn wait_for_shutdown(security: &SecurityRuntime) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut term)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        ) else {
            tokio::signal::ctrl_c().await.ok();
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => match security.audit.reopen() {
                    Ok(()) => tracing::info!(path = %security.audit.path().display(), "SIGHUP: audit log reopened"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: cannot reopen the audit log; still writing the old file"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = security;
        tokio::signal::ctrl_c().await.ok();
    }
}

/// `host-agent pair`: opens (or closes) the pairing window the running host honours.
pub fn run_pair(
    pair: &PairArgs,
    args: &SecurityArgs,
    identity_dir: &Path,
    authorized: &Path,
) -> anyhow::Result<()> {
    if !args.pairing {
        anyhow::bail!(
            "pairing is disabled in this configuration (pairing = false); authorize viewers with \
             `certs authorize` instead"
        );
    }
    let path = args
        .pairing_file
        .clone()
        .unwrap_or_else(|| config::default_pairing_file(authorized));
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| config::default_audit_log(authorized));
    // The host's audit log is optional here: the running host records every attempt anyway.
    let audit = AuditLog::open(&audit_path).ok();
    // Run as root for the packaged service: a log created here must stay writable by it.
    #[cfg(unix)]
    if audit.is_some() {
        crate::pair::hand_to_directory_owner(&audit_path);
    }
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    if pair.close {
        sightline_certs::pairing::PairingWindow::remove(&path)
            .with_context(|| format!("pairing window {}", path.display()))?;
        if let Some(a) = &audit {
            a.record(
                "pair_window_closed",
                json!({"reason": "closed by operator", "by": by}),
            );
        }
        println!("pairing window closed ({})", path.display());
        return Ok(());
    }
    let ttl = Duration::from_secs(pair.ttl.clamp(10, 3600));
    let window = crate::pair::open_window(
        &path,
        ttl,
        pair.viewer_name.as_deref(),
        pair.max_failures.max(1),
    )
    .with_context(|| format!("pairing window {}", path.display()))?;
    if let Some(a) = &audit {
        a.record(
            "pair_window_opened",
            json!({
                "expires": crate::audit::rfc3339_utc(
                    std::time::UNIX_EPOCH + Duration::from_secs(window.expires_unix_s)
                ),
                "ttl_s": ttl.as_secs(),
                "viewer_name": window.name,
                "max_failures": window.max_failures,
                "by": by,
            }),
        );
    }
    let fingerprint = sightline_certs::Identity::load(identity_dir)
        .map(|i| i.fingerprint().to_string())
        .unwrap_or_else(|_| "(no host identity yet: it is created when host-agent starts)".into());
    let until = crate::audit::rfc3339_utc(
        std::time::UNIX_EPOCH + Duration::from_secs(window.expires_unix_s),
    );
    println!("pairing code: {}", window.code);
    println!(
        "valid until {until} ({} min); {} wrong tries burn it; it works once",
        ttl.as_secs().div_ceil(60),
        window.max_failures
    );
    println!("on the viewer:  viewer HOST --pair {}", window.code);
    println!("host fingerprint: {fingerprint}");
    Ok(())
}
