//! The host's TOML configuration file (`host-agent --config /etc/sightline/host.toml`).
//!
//! Every key is a command-line flag's long name in snake_case and means exactly what the flag
//! means: `max_sessions = 4` is `--max-sessions 4`, `source = "x11"` is `--source x11`, a switch
//! is `true`/`false`. So every setting has one documentation (`host-agent --help`, or the
//! commented file `host-agent --print-config` writes) and one default, and new flags are
//! configurable without touching this module.
//!
//! Rules:
//! * flags given on the command line override the file;
//! * an unknown key is an error that names it and the valid keys: a misspelt security setting
//!   must never be silently ignored;
//! * a value is checked by the same parser as the flag, and an error names the file and key;
//! * there are no sections: the file is flat, like the flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// Flags that are not settings: they choose the file, print things or act.
const NOT_SETTINGS: &[&str] = &["config", "print_config", "help", "version"];

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions).
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: not valid TOML: {detail}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        detail: String,
    },
    /// A key that is not a setting (typo, or a setting from a newer version).
    #[error(
        "config file {}: unknown key `{key}`{hint}; valid keys: {valid}",
        path.display()
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// A suggestion, if there is an obvious one.
        hint: String,
        /// Every valid key.
        valid: String,
    },
    /// A value the flag's parser refuses, or of the wrong TOML type.
    #[error("config file {}: key `{key}`: {detail}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// The arguments of `cmd` that are settings (have a long flag and are not in
/// [`NOT_SETTINGS`]), in declaration order.
pub fn settings(cmd: &Command) -> Vec<&Arg> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some() && !a.is_positional())
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .collect()
}

fn takes_value(arg: &Arg) -> bool {
    !matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    )
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

/// The command-line arguments that a file key stands for.
fn key_to_args(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    if !takes_value(arg) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("expected true or false".into()),
        };
    }
    let values: Vec<String> = match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items
            .iter()
            .map(|v| scalar(v).ok_or_else(|| "expected a list of plain values".to_string()))
            .collect::<Result<_, _>>()?,
        toml::Value::Array(_) => return Err("expected one value, not a list".into()),
        toml::Value::Table(_) => {
            return Err("sections are not supported: keys are flat, named like the flags".into())
        }
        v => vec![scalar(v).ok_or_else(|| "unsupported value".to_string())?],
    };
    // `--key=value` so that values starting with '-' are not taken for flags.
    Ok(values
        .into_iter()
        .map(|v| format!("--{long}={v}").into())
        .collect())
}

/// The arguments the file at `path` (contents `text`) adds under `matches` (the command line
/// alone): every file key that the command line did not set.
pub fn file_args(
    cmd: &Command,
    matches: &ArgMatches,
    path: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            detail: e.to_string().trim().to_string(),
        })?;
    let settings = settings(cmd);
    let mut out = Vec::new();
    for (key, value) in &table {
        let Some(arg) = settings.iter().find(|a| a.get_id().as_str() == key) else {
            let underscored = key.replace('-', "_");
            let hint = if settings.iter().any(|a| a.get_id().as_str() == underscored) {
                format!(" (did you mean `{underscored}`?)")
            } else {
                String::new()
            };
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: key.clone(),
                hint,
                valid: settings
                    .iter()
                    .map(|a| a.get_id().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let args = key_to_args(arg, value).map_err(|detail| ConfigError::Value {
            path: path.to_path_buf(),
            key: key.clone(),
            detail,
        })?;
        // The flag's own parser checks the value.
        let mut probe: Vec<OsString> = vec![cmd.get_name().into()];
        probe.extend(args.iter().cloned());
        if let Err(e) = cmd.clone().try_get_matches_from(probe) {
            let detail = e.to_string();
            let detail = detail
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: key.clone(),
                detail,
            });
        }
        if matches.value_source(key) == Some(ValueSource::CommandLine) {
            continue;
        }
        out.extend(args);
    }
    Ok(out)
}

/// The full argument list: `argv[0]`, then what the file at `path` adds, then the command
/// line. Flags on the command line come last and win because the file only contributes keys
/// the command line did not set.
pub fn merge(cmd: &Command, argv: &[OsString], path: &Path) -> Result<Vec<OsString>, ConfigError> {
    let matches = cmd
        .clone()
        .try_get_matches_from(argv.iter().cloned())
        .unwrap_or_else(|e| e.exit());
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let extra = file_args(cmd, &matches, path, &text)?;
    let mut out = Vec::with_capacity(argv.len() + extra.len());
    out.extend(argv.first().cloned());
    out.extend(extra);
    out.extend(argv.iter().skip(1).cloned());
    Ok(out)
}

fn toml_value(raw: &str) -> String {
    let plain_number = raw.parse::<i64>().is_ok()
        || (raw.parse::<f64>().is_ok_and(f64::is_finite) && raw.contains('.'));
    if plain_number || raw == "true" || raw == "false" {
        raw.to_owned()
    } else {
        toml::Value::String(raw.to_owned()).to_string()
    }
}

fn wrap_comment(text: &str, out: &mut String) {
    for paragraph in text.lines() {
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() + word.len() + 1 > 96 && line.len() > 1 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// A commented configuration file with every setting of `cmd`: its help text, its default, and
/// the value in `matches` (what the command line and any file gave) when there is one; settings
/// without a value are written commented out.
pub fn render(cmd: &Command, matches: &ArgMatches, header: &str) -> String {
    let mut out = String::new();
    wrap_comment(header, &mut out);
    for arg in settings(cmd) {
        out.push('\n');
        let id = arg.get_id().as_str();
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help.trim_end();
        let help = if help.ends_with(['.', ')', ':']) || help.is_empty() {
            help.to_owned()
        } else {
            format!("{help}.")
        };
        wrap_comment(&help, &mut out);
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_owned())
            .collect();
        if !possible.is_empty() && takes_value(arg) {
            out.push_str(&format!("# One of: {}.\n", possible.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !takes_value(arg) {
            let on = matches.get_flag(id);
            out.push_str("# Default: false.\n");
            out.push_str(&format!("{id} = {on}\n"));
            continue;
        }
        match defaults.as_slice() {
            [] => out.push_str("# Default: not set.\n"),
            [d] => out.push_str(&format!("# Default: {}.\n", toml_value(d))),
            many => out.push_str(&format!("# Default: {}.\n", many.join(", "))),
        }
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let explicit = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let placeholder = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| id.to_uppercase());
        match raw.as_slice() {
            [] => out.push_str(&format!("# {id} = \"{placeholder}\"\n")),
            [v] if !explicit => out.push_str(&format!("# {id} = {}\n", toml_value(v))),
            [v] => out.push_str(&format!("{id} = {}\n", toml_value(v))),
            many => out.push_str(&format!(
                "{id} = [{}]\n",
                many.iter()
                    .map(|v| toml_value(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser, PartialEq)]
    #[command(name = "demo")]
    struct Demo {
        /// Config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen here.
        #[arg(long, default_value = "0.0.0.0:4433")]
        listen: String,
        /// Most sessions.
        #[arg(long, default_value_t = 4)]
        max_sessions: usize,
        /// Ratio.
        #[arg(long, default_value_t = 0.1)]
        fec: f32,
        /// A switch.
        #[arg(long)]
        quiet: bool,
        /// Optional path.
        #[arg(long)]
        record: Option<PathBuf>,
        /// A mode.
        #[arg(long, value_parser = ["x11", "synthetic"])]
        source: Option<String>,
    }

    fn parse(file: &str, cli: &[&str]) -> Result<Demo, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("host.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv: Vec<OsString> = vec!["demo".into(), "--config".into(), path.clone().into()];
        argv.extend(cli.iter().map(OsString::from));
        let cmd = Demo::command();
        let merged = merge(&cmd, &argv, &path)?;
        let m = cmd.try_get_matches_from(merged).unwrap();
        Ok(Demo::from_arg_matches(&m).unwrap())
    }

    #[test]
    fn file_sets_and_flags_override() {
        let d = parse(
            "max_sessions = 2\nfec = 0.25\nquiet = true\nlisten = \"127.0.0.1:5000\"\n",
            &["--max-sessions", "7"],
        )
        .unwrap();
        assert_eq!(d.max_sessions, 7, "the command line wins");
        assert_eq!(d.fec, 0.25);
        assert!(d.quiet);
        assert_eq!(d.listen, "127.0.0.1:5000");
        assert_eq!(d.record, None);
        let d = parse("quiet = false\n", &[]).unwrap();
        assert!(!d.quiet);
        assert_eq!(d.max_sessions, 4, "defaults stay");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = parse("max-sessions = 2\n", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key `max-sessions`"), "{e}");
        assert!(e.contains("did you mean `max_sessions`"), "{e}");
        assert!(e.contains("valid keys: listen, max_sessions"), "{e}");
        let e = parse("config = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key `config`"), "{e}");
        let e = parse("max_sessions = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `max_sessions`") && e.contains("many"),
            "{e}"
        );
        let e = parse("source = \"wayland\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `source`"), "{e}");
        let e = parse("quiet = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = parse("[limits]\nx = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key `limits`"), "{e}");
        let e = parse("listen = \n", &[]).unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn rendered_file_reads_back_to_the_same_settings() {
        let cmd = Demo::command();
        let m = cmd
            .clone()
            .try_get_matches_from([
                "demo",
                "--max-sessions",
                "3",
                "--quiet",
                "--record",
                "/tmp/r",
            ])
            .unwrap();
        let text = render(&cmd, &m, "Demo settings.");
        assert!(text.contains("max_sessions = 3\n"), "{text}");
        assert!(text.contains("# listen = \"0.0.0.0:4433\"\n"), "{text}");
        assert!(text.contains("# Default: 0.1.\n"), "{text}");
        assert!(text.contains("# source = \"SOURCE\"\n"), "{text}");
        assert!(text.contains("# One of: x11, synthetic.\n"), "{text}");
        assert!(!text.contains("config ="), "{text}");
        let back = parse(&text, &[]).unwrap();
        assert_eq!(back.max_sessions, 3);
        assert!(back.quiet);
        assert_eq!(back.record, Some(PathBuf::from("/tmp/r")));
    }
}
