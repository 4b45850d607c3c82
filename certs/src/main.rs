//! `certs`: create Sightline identities and manage the host's authorized
//! viewers and the viewer's known hosts.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sightline_certs::{
    load_cert_pem, AuthorizedViewers, Fingerprint, Identity, KnownHosts, Role, NAME_FILE,
};

const EXAMPLE: &str = "\
Example with two machines, a host `workstation` and a viewer `laptop`:

  on the host:    certs create --role host --dir ~/.config/sightline/host
                  certs fingerprint ~/.config/sightline/host
  on the viewer:  certs create --role viewer --dir ~/.config/sightline/viewer
                  certs fingerprint ~/.config/sightline/viewer

  Exchange the two fingerprints over a channel you trust, then

  on the host:    certs authorize --authorized ~/.config/sightline/authorized_viewers \\
                      --fingerprint SHA256:<viewer fingerprint> --name laptop
  on the viewer:  certs pin --known-hosts ~/.config/sightline/known_hosts \\
                      --host workstation:<port> --fingerprint SHA256:<host fingerprint>";

/// Create Sightline identities and manage trust between hosts and viewers.
///
/// Hosts and viewers identify each other by the SHA-256 fingerprint of
/// their self-signed certificates: the viewer pins host fingerprints in its
/// known hosts file, the host lists viewer fingerprints in its authorized
/// viewers file.
#[derive(Debug, Parser)]
#[command(name = "certs", version, after_help = EXAMPLE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Host,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Host => Role::Host,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// Where a fingerprint comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Source {
    /// An identity directory (as made by `certs create`).
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// A certificate PEM file.
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// A fingerprint as printed by `certs fingerprint` (SHA256:AB:01:...).
    #[arg(long, value_name = "FP")]
    fingerprint: Option<Fingerprint>,
}

/// Which list to print.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ListTarget {
    /// The host's authorized viewers file.
    #[arg(long, value_name = "FILE")]
    authorized: Option<PathBuf>,
    /// The viewer's known hosts file.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
}

/// Which viewer(s) to revoke.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct RevokeTarget {
    /// The viewer's fingerprint.
    #[arg(long, value_name = "FP")]
    fingerprint: Option<Fingerprint>,
    /// The viewer's name (every entry with this name is revoked).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new host or viewer identity (key pair and self-signed
    /// certificate) and print its fingerprint.
    Create {
        /// Whether the identity is for a host or a viewer.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Directory to store the identity in (created, mode 0700).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Human-readable name [default: this machine's host name].
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing identity (its peers will have to re-pin or
        /// re-authorize it).
        #[arg(long)]
        force: bool,
    },
    /// Print the fingerprint of an identity directory or a certificate PEM
    /// file.
    Fingerprint {
        /// Identity directory or certificate PEM file.
        path: PathBuf,
    },
    /// Authorize a viewer to connect to this host (creates the file if
    /// needed).
    Authorize {
        /// The host's authorized viewers file.
        #[arg(long, value_name = "FILE")]
        authorized: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Name to record for the viewer [default: the identity's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a viewer from the host's authorized viewers.
    Revoke {
        /// The host's authorized viewers file.
        #[arg(long, value_name = "FILE")]
        authorized: PathBuf,
        #[command(flatten)]
        target: RevokeTarget,
    },
    /// List authorized viewers or known hosts.
    List {
        #[command(flatten)]
        target: ListTarget,
    },
    /// Pin a host's fingerprint in the viewer's known hosts (creates the
    /// file if needed; replaces an existing pin).
    Pin {
        /// The viewer's known hosts file.
        #[arg(long, value_name = "FILE")]
        known_hosts: PathBuf,
        /// The host as the viewer connects to it.
        #[arg(long, value_name = "HOST:PORT")]
        host: String,
        #[command(flatten)]
        source: Source,
    },
    /// Remove a host's pin from the viewer's known hosts.
    Unpin {
        /// The viewer's known hosts file.
        #[arg(long, value_name = "FILE")]
        known_hosts: PathBuf,
        /// The host as the viewer connects to it.
        #[arg(long, value_name = "HOST:PORT")]
        host: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Library errors already include their cause in their message.
            eprintln!("certs: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_name(role: Role) -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
        .unwrap_or_else(|| format!("sightline-{role}"))
}

/// Resolves a fingerprint source, with the name it suggests (if any).
fn resolve(source: &Source) -> Result<(Fingerprint, Option<String>)> {
    if let Some(fp) = source.fingerprint {
        return Ok((fp, None));
    }
    if let Some(dir) = &source.identity {
        let id = Identity::load(dir)?;
        return Ok((id.fingerprint(), Some(id.name.clone())));
    }
    if let Some(pem) = &source.cert {
        return Ok((fingerprint_of_cert(pem)?, name_next_to(pem)));
    }
    bail!("one of --identity, --cert or --fingerprint is required")
}

fn fingerprint_of_cert(pem: &Path) -> Result<Fingerprint> {
    Ok(Fingerprint::of_der(load_cert_pem(pem)?.as_ref()))
}

/// The `name` file of the identity directory a certificate file sits in.
fn name_next_to(pem: &Path) -> Option<String> {
    let dir = pem.parent()?;
    let name = std::fs::read_to_string(dir.join(NAME_FILE)).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Create {
            role,
            dir,
            name,
            force,
        } => {
            let role = Role::from(role);
            if Identity::exists_in(&dir) && !force {
                bail!(
                    "{} already holds an identity; refusing to overwrite it \
                     (use --force to replace it; its peers will then have to re-pin or re-authorize it)",
                    dir.display()
                );
            }
            let name = name.unwrap_or_else(|| default_name(role));
            let id = Identity::generate(role, &name)?;
            id.save(&dir)?;
            println!("created {role} identity {:?} in {}", id.name, dir.display());
            println!("fingerprint: {}", id.fingerprint());
        }
        Command::Fingerprint { path } => {
            let fp = if path.is_dir() {
                Identity::load(&path)?.fingerprint()
            } else {
                fingerprint_of_cert(&path)?
            };
            println!("{fp}");
        }
        Command::Authorize {
            authorized,
            source,
            name,
        } => {
            let (fp, suggested) = resolve(&source)?;
            let name = name.or(suggested).unwrap_or_else(|| "viewer".to_string());
            let mut list = AuthorizedViewers::load_or_empty(&authorized)?;
            let added = list.authorize(fp, &name);
            list.save(&authorized)?;
            if added {
                println!(
                    "authorized viewer {name:?} ({fp}) in {}",
                    authorized.display()
                );
            } else {
                println!("viewer {fp} was already authorized; name set to {name:?}");
            }
        }
        Command::Revoke { authorized, target } => {
            let mut list = AuthorizedViewers::load(&authorized)?;
            let victims: Vec<(Fingerprint, String)> = match (&target.fingerprint, &target.name) {
                (Some(fp), _) => list
                    .lookup(fp)
                    .map(|n| vec![(*fp, n.to_string())])
                    .unwrap_or_default(),
                (None, Some(name)) => list
                    .iter()
                    .filter(|(_, n)| *n == name.trim())
                    .map(|(f, n)| (*f, n.to_string()))
                    .collect(),
                (None, None) => bail!("one of --fingerprint or --name is required"),
            };
            if victims.is_empty() {
                let what = match (&target.fingerprint, &target.name) {
                    (Some(fp), _) => fp.to_string(),
                    (None, Some(name)) => format!("named {name:?}"),
                    (None, None) => String::new(),
                };
                bail!("no authorized viewer {what} in {}", authorized.display());
            }
            for (fp, _) in &victims {
                list.revoke(fp);
            }
            list.save(&authorized)?;
            for (fp, name) in victims {
                println!("revoked viewer {name:?} ({fp})");
            }
        }
        Command::List { target } => {
            if let Some(path) = target.authorized {
                let list = AuthorizedViewers::load(&path)?;
                if list.is_empty() {
                    eprintln!("no authorized viewers in {}", path.display());
                }
                for (fp, name) in list.iter() {
                    println!("{fp} {name}");
                }
            } else if let Some(path) = target.known_hosts {
                let known = KnownHosts::load_or_empty(&path)?;
                if known.is_empty() {
                    eprintln!("no known hosts in {}", path.display());
                }
                for (host, fp) in known.iter() {
                    println!("{host} {fp}");
                }
            }
        }
        Command::Pin {
            known_hosts,
            host,
            source,
        } => {
            let (fp, _) = resolve(&source)?;
            let mut known = KnownHosts::load_or_empty(&known_hosts)?;
            let previous = known.pin(&host, fp);
            known.save(&known_hosts)?;
            match previous {
                Some(old) if old == fp => println!("{host} was already pinned to {fp}"),
                Some(old) => println!("pinned {host} to {fp} (replacing {old})"),
                None => println!("pinned {host} to {fp}"),
            }
        }
        Command::Unpin { known_hosts, host } => {
            let mut known = KnownHosts::load_or_empty(&known_hosts)?;
            if !known.unpin(&host) {
                bail!("{host} is not pinned in {}", known_hosts.display());
            }
            known.save(&known_hosts)?;
            println!("unpinned {host}");
        }
    }
    Ok(())
}
