//! Tests of the `certs` command-line tool.

use std::path::Path;
use std::process::{Command, Output};

use sightline_certs::{AuthorizedViewers, Fingerprint, Identity, KnownHosts};

fn certs(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certs"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run certs")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = certs(args, cwd);
    assert!(
        out.status.success(),
        "certs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], cwd: &Path) -> String {
    let out = certs(args, cwd);
    assert!(!out.status.success(), "certs {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn two_machine_setup() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    let out = ok(
        &[
            "create",
            "--role",
            "host",
            "--dir",
            "host",
            "--name",
            "workstation",
        ],
        d,
    );
    let host = Identity::load(&d.join("host")).unwrap();
    assert_eq!(host.name, "workstation");
    assert!(out.contains(&host.fingerprint().to_string()), "{out}");

    ok(&["create", "--role", "viewer", "--dir", "viewer"], d);
    let viewer = Identity::load(&d.join("viewer")).unwrap();
    assert!(!viewer.name.is_empty());

    // `fingerprint` prints exactly the library's value, for a directory
    // and for a PEM file.
    let printed = ok(&["fingerprint", "host"], d);
    assert_eq!(printed.trim(), host.fingerprint().to_string());
    let printed = ok(&["fingerprint", "viewer/cert.pem"], d);
    assert_eq!(
        printed.trim().parse::<Fingerprint>().unwrap(),
        viewer.fingerprint()
    );

    // Authorize the viewer on the host, pin the host on the viewer.
    ok(
        &[
            "authorize",
            "--authorized",
            "av",
            "--identity",
            "viewer",
            "--name",
            "laptop",
        ],
        d,
    );
    let list = AuthorizedViewers::load(&d.join("av")).unwrap();
    assert_eq!(list.lookup(&viewer.fingerprint()), Some("laptop"));
    let fp = host.fingerprint().to_string();
    ok(
        &[
            "pin",
            "--known-hosts",
            "kh",
            "--host",
            "workstation:4433",
            "--fingerprint",
            &fp,
        ],
        d,
    );
    let known = KnownHosts::load_or_empty(&d.join("kh")).unwrap();
    assert_eq!(known.lookup("workstation:4433"), Some(host.fingerprint()));

    let listed = ok(&["list", "--authorized", "av"], d);
    assert!(listed.contains(&viewer.fingerprint().to_string()) && listed.contains("laptop"));
    let listed = ok(&["list", "--known-hosts", "kh"], d);
    assert!(listed.contains("workstation:4433") && listed.contains(&fp));

    // Revoke and unpin.
    ok(&["revoke", "--authorized", "av", "--name", "laptop"], d);
    assert!(AuthorizedViewers::load(&d.join("av")).unwrap().is_empty());
    fails(&["revoke", "--authorized", "av", "--name", "laptop"], d);
    ok(
        &["unpin", "--known-hosts", "kh", "--host", "workstation:4433"],
        d,
    );
    assert!(KnownHosts::load_or_empty(&d.join("kh")).unwrap().is_empty());
}

#[test]
fn create_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        &["create", "--role", "host", "--dir", "id", "--name", "h"],
        d,
    );
    let before = Identity::load(&d.join("id")).unwrap().fingerprint();
    let err = fails(&["create", "--role", "host", "--dir", "id"], d);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert_eq!(Identity::load(&d.join("id")).unwrap().fingerprint(), before);
    ok(
        &[
            "create", "--role", "host", "--dir", "id", "--name", "h", "--force",
        ],
        d,
    );
    assert_ne!(Identity::load(&d.join("id")).unwrap().fingerprint(), before);
}

#[test]
fn errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let err = fails(&["fingerprint", "."], d);
    assert!(err.contains("certs create"), "{err}");
    let err = fails(
        &[
            "pin",
            "--known-hosts",
            "kh",
            "--host",
            "h:1",
            "--fingerprint",
            "SHA256:12",
        ],
        d,
    );
    assert!(err.contains("invalid fingerprint"), "{err}");
    // Exactly one source is required.
    fails(&["authorize", "--authorized", "av"], d);
    fails(&["list", "--authorized", "av"], d);
    std::fs::write(d.join("av"), "SHA256:zz bad\n").unwrap();
    let err = fails(&["list", "--authorized", "av"], d);
    assert!(err.contains("av:1:"), "{err}");
}
