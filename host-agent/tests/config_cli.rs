//! The host-agent binary's configuration file, `--print-config`, the packaged /etc file and
//! `host-agent pair`, run as a person would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn host_agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-agent"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run host-agent")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The flags that make the packaged /etc/sightline/host.toml (everything else stays at its
/// documented default, commented out).
const SERVICE_FLAGS: &[&str] = &[
    "--listen",
    "0.0.0.0:4433",
    "--identity",
    "/var/lib/sightline/host-identity",
    "--authorized",
    "/var/lib/sightline/authorized_viewers",
    "--audit-log",
    "/var/log/sightline/audit.jsonl",
    "--pairing-file",
    "/var/lib/sightline/pairing",
    "--source",
    "x11",
    "--display",
    ":0",
];

fn packaged_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/host/host.toml")
}

#[test]
fn packaged_config_is_what_print_config_writes_for_the_service() {
    let mut args = SERVICE_FLAGS.to_vec();
    args.push("--print-config");
    let out = host_agent(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = stdout(&out);
    let path = packaged_config();
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        if std::env::var_os("SIGHTLINE_BLESS").is_some() {
            std::fs::write(&path, &expected).unwrap();
            return;
        }
        panic!(
            "{} is out of date with host-agent's flags; regenerate it with\n  \
             SIGHTLINE_BLESS=1 cargo test -p sightline-host-agent --test config_cli\n\
             (every flag is a config key, so a new flag needs a new documented entry)",
            path.display()
        );
    }
    // Every setting is in the file, set or commented out with its default.
    for key in [
        "listen",
        "identity",
        "authorized",
        "max_sessions",
        "handshake_timeout",
        "source",
        "bitrate",
        "input",
        "audit_log",
        "pairing",
        "pairing_file",
        "idle_timeout",
        "max_input_rate",
        "max_control_rate",
        "connect_rate",
        "connect_burst",
        "max_handshakes",
    ] {
        assert!(
            actual.contains(&format!("\n{key} = ")) || actual.contains(&format!("\n# {key} = ")),
            "{key} missing from the packaged config"
        );
    }
}

#[test]
fn config_file_sets_flags_override_and_typos_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("host.toml");
    std::fs::write(
        &cfg,
        "max_sessions = 2\nbitrate = 35.5\nidle_timeout = 30\npairing = false\n\
         audit_log = \"/tmp/sightline-audit-test.jsonl\"\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let out = host_agent(&["--config", c, "--max-sessions", "9", "--print-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\nmax_sessions = 9\n"), "flag wins:\n{text}");
    assert!(text.contains("\nbitrate = 35.5\n"), "{text}");
    assert!(text.contains("\nidle_timeout = 30\n"), "{text}");
    assert!(text.contains("\npairing = false\n"), "{text}");
    assert!(
        text.contains("\n# max_handshakes = 32\n"),
        "defaults stay:\n{text}"
    );

    std::fs::write(&cfg, "max_sesions = 2\n").unwrap();
    let out = host_agent(&["--config", c, "--print-config"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown key `max_sesions`"), "{err}");
    assert!(err.contains(&cfg.display().to_string()), "{err}");

    std::fs::write(&cfg, "source = \"wayland\"\n").unwrap();
    let out = host_agent(&["--config", c, "--print-config"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("key `source`"), "{}", stderr(&out));

    let out = host_agent(&["--config", "/nonexistent/host.toml", "--print-config"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/host.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pair_opens_a_private_one_time_window_and_audits_it() {
    let tmp = tempfile::tempdir().unwrap();
    let authorized = tmp.path().join("state/authorized_viewers");
    let a = authorized.to_str().unwrap();
    let id = tmp.path().join("state/host-identity");
    let out = host_agent(&[
        "--authorized",
        a,
        "--identity",
        id.to_str().unwrap(),
        "pair",
        "--ttl",
        "120",
        "--viewer-name",
        "grading suite",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    println!("{text}");
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("pairing code: "))
        .expect("a code is shown");
    assert_eq!(code.len(), 9);
    assert!(
        text.contains(&format!("viewer HOST --pair {code}")),
        "{text}"
    );
    let window_path = tmp.path().join("state/pairing");
    let w = sightline_certs::pairing::PairingWindow::load(&window_path)
        .unwrap()
        .expect("window file next to the authorized list");
    assert_eq!(w.code.to_string(), code);
    assert_eq!(w.name.as_deref(), Some("grading suite"));
    assert!(w.expires_unix_s - w.opened_unix_s == 120);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&window_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let audit = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"event\":\"pair_window_opened\""),
        "{audit}"
    );
    assert!(
        !audit.contains(&w.code.digits().to_string()),
        "the audit log never holds the code"
    );

    let out = host_agent(&["--authorized", a, "pair", "--close"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!window_path.exists());

    let out = host_agent(&["--authorized", a, "--pairing", "false", "pair"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pairing is disabled"),
        "{}",
        stderr(&out)
    );
}
