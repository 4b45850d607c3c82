//! Jog/shuttle → editor actions: a [`Profile`] maps the shuttle ring, the jog wheel and the
//! controller buttons to key chords, and [`JogProfileSink`] types them through a keyboard sink
//! (the XTEST sink on X11).
//!
//! Profiles are TOML (see `docs/jog-shuttle.md`); six are built in ([`BUILTIN_NAMES`]), others
//! load from a file ([`load`], or [`lookup`] for the `--jog-profile NAME|FILE` flag).
//!
//! # Shuttle scheme
//!
//! In `jkl` mode (J/K/L editors) arriving at shuttle position `b` taps the stop key (K), then the
//! forward key (L) `b` times when `b > 0` or the reverse key (J) `|b|` times when `b < 0`. The
//! editor's speed therefore depends only on `b`, never on the way there: 0→3 gives K L L L, 3→1
//! gives K L, 1→0 gives K, 0→−2 gives K J J. In `toggle` mode (editors whose play key toggles,
//! such as Blender) only the direction matters: crossing or leaving the centre taps the stop key
//! (or, without one, the key that started playback, which toggles it off), then the forward or
//! reverse play key. A `positions` table in the profile overrides what a position taps.
//!
//! Keys are tapped (pressed and released at once) except for buttons, whose chord is held while
//! the button is; nothing stays held after a release or `ReleaseAll`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sightline_protocol::msg::{InputEvent, InputKinds, KeyEvent, Modifiers};

use crate::inject::{event_kind, InjectError, InputSink};

/// X11 keysyms (values from `keysymdef.h`) used by the key-name table.
pub mod keysym {
    /// `XK_space`.
    pub const SPACE: u32 = 0x20;
    /// `XK_Return`.
    pub const RETURN: u32 = 0xff0d;
    /// `XK_Escape`.
    pub const ESCAPE: u32 = 0xff1b;
    /// `XK_Home`.
    pub const HOME: u32 = 0xff50;
    /// `XK_Left`.
    pub const LEFT: u32 = 0xff51;
    /// `XK_Up`.
    pub const UP: u32 = 0xff52;
    /// `XK_Right`.
    pub const RIGHT: u32 = 0xff53;
    /// `XK_Down`.
    pub const DOWN: u32 = 0xff54;
    /// `XK_End`.
    pub const END: u32 = 0xff57;
    /// `XK_F1`; `XK_F`n is `F1 + n - 1` up to `XK_F24`.
    pub const F1: u32 = 0xffbe;
    /// `XK_Shift_L`.
    pub const SHIFT_L: u32 = 0xffe1;
    /// `XK_Control_L`.
    pub const CONTROL_L: u32 = 0xffe3;
    /// `XK_Alt_L`.
    pub const ALT_L: u32 = 0xffe9;
    /// `XK_Super_L`.
    pub const SUPER_L: u32 = 0xffeb;
}

/// Named keys: canonical name and keysym.
const NAMED_KEYS: &[(&str, u32)] = &[
    ("Left", keysym::LEFT),
    ("Right", keysym::RIGHT),
    ("Up", keysym::UP),
    ("Down", keysym::DOWN),
    ("Home", keysym::HOME),
    ("End", keysym::END),
    ("PageUp", 0xff55),
    ("PageDown", 0xff56),
    ("space", keysym::SPACE),
    ("Return", keysym::RETURN),
    ("Escape", keysym::ESCAPE),
    ("Tab", 0xff09),
    ("BackSpace", 0xff08),
    ("Delete", 0xffff),
    ("Insert", 0xff63),
    ("bracketleft", 0x5b),
    ("bracketright", 0x5d),
    ("comma", 0x2c),
    ("period", 0x2e),
    ("slash", 0x2f),
    ("backslash", 0x5c),
    ("semicolon", 0x3b),
    ("apostrophe", 0x27),
    ("grave", 0x60),
    ("minus", 0x2d),
    ("equal", 0x3d),
];

/// Other accepted spellings of named keys.
const KEY_ALIASES: &[(&str, &str)] = &[
    ("Prior", "PageUp"),
    ("Page_Up", "PageUp"),
    ("Next", "PageDown"),
    ("Page_Down", "PageDown"),
    ("Enter", "Return"),
    ("Esc", "Escape"),
    ("Del", "Delete"),
    ("Ins", "Insert"),
    ("[", "bracketleft"),
    ("]", "bracketright"),
    (",", "comma"),
    (".", "period"),
    ("/", "slash"),
    ("\\", "backslash"),
    (";", "semicolon"),
    ("'", "apostrophe"),
    ("`", "grave"),
    ("-", "minus"),
    ("=", "equal"),
];

/// Modifiers in the order a chord presses them: flag, canonical name, keysym.
const MODIFIER_KEYS: [(Modifiers, &str, u32); 4] = [
    (Modifiers::CONTROL, "ctrl", keysym::CONTROL_L),
    (Modifiers::SHIFT, "shift", keysym::SHIFT_L),
    (Modifiers::ALT, "alt", keysym::ALT_L),
    (Modifiers::SUPER, "super", keysym::SUPER_L),
];

/// The modifier a name denotes (`ctrl`/`control`, `shift`, `alt`, `super`; any case).
fn modifier_named(name: &str) -> Option<(Modifiers, &'static str, u32)> {
    let name = if name.eq_ignore_ascii_case("control") {
        "ctrl"
    } else {
        name
    };
    MODIFIER_KEYS
        .iter()
        .copied()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
}

/// The keysym of a (non-modifier) key name: a letter (either case, giving the lower-case
/// keysym), a digit, `F1`..`F24` or a named key; names are case-insensitive.
pub fn keysym_of(name: &str) -> Option<u32> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_ascii_alphanumeric() {
            return Some(u32::from(c.to_ascii_lowercase()));
        }
    }
    if let Some(n) = name
        .strip_prefix(['F', 'f'])
        .and_then(|n| n.parse::<u32>().ok())
    {
        if (1..=24).contains(&n) && !name[1..].starts_with(['+', '0']) {
            return Some(keysym::F1 + n - 1);
        }
    }
    let canonical = KEY_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, c)| c);
    NAMED_KEYS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(canonical))
        .map(|&(_, k)| k)
}

/// The canonical name of a keysym from the table (modifiers by their chord name).
pub fn key_name(keysym: u32) -> Option<String> {
    if let Some(c) = char::from_u32(keysym).filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Some(c.to_string());
    }
    if (keysym::F1..keysym::F1 + 24).contains(&keysym) {
        return Some(format!("F{}", keysym - keysym::F1 + 1));
    }
    if let Some((_, n, _)) = MODIFIER_KEYS.iter().find(|(_, _, k)| *k == keysym) {
        return Some((*n).to_string());
    }
    NAMED_KEYS
        .iter()
        .find(|(_, k)| *k == keysym)
        .map(|(n, _)| (*n).to_string())
}

/// Every valid key name, for error messages.
pub fn valid_key_names() -> String {
    let named: Vec<&str> = NAMED_KEYS.iter().map(|(n, _)| *n).collect();
    let mods: Vec<&str> = MODIFIER_KEYS.iter().map(|(_, n, _)| *n).collect();
    format!(
        "a-z, 0-9, F1-F24, {}; modifiers {}",
        named.join(", "),
        mods.join(", ")
    )
}

/// A key name in a chord is not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key name `{name}` in `{chord}` (valid names: {})",
    valid_key_names()
)]
pub struct KeyNameError {
    /// The whole chord as written.
    pub chord: String,
    /// The part that is not a key name.
    pub name: String,
}

/// A key with modifiers, written `mod+mod+key` (e.g. `ctrl+shift+z`, `space`, `F9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chord {
    /// Modifiers pressed before the key (ctrl, shift, alt, super).
    pub modifiers: Modifiers,
    /// The key's keysym (a modifier's own keysym for a chord that is just a modifier).
    pub keysym: u32,
}

impl Chord {
    /// A chord of one key without modifiers.
    pub const fn key(keysym: u32) -> Self {
        Chord {
            modifiers: Modifiers::EMPTY,
            keysym,
        }
    }

    /// Parses `mod+…+key`; names are case-insensitive, letters give lower-case keysyms.
    pub fn parse(s: &str) -> Result<Self, KeyNameError> {
        let err = |name: &str| KeyNameError {
            chord: s.to_string(),
            name: name.to_string(),
        };
        let parts: Vec<&str> = s.split('+').map(str::trim).collect();
        let (key, mods) = parts.split_last().expect("split yields at least one part");
        let mut modifiers = Modifiers::EMPTY;
        for m in mods {
            match modifier_named(m) {
                Some((flag, _, _)) => modifiers = modifiers.union(flag),
                None => return Err(err(m)),
            }
        }
        let keysym = match modifier_named(key) {
            Some((_, _, k)) => k,
            None => keysym_of(key).ok_or_else(|| err(key))?,
        };
        Ok(Chord { modifiers, keysym })
    }

    /// Keysyms in press order: modifiers (ctrl, shift, alt, super), then the key. Releasing
    /// goes in reverse, so modifiers are released last.
    pub fn press_order(&self) -> Vec<u32> {
        let mut keys: Vec<u32> = MODIFIER_KEYS
            .iter()
            .filter(|(flag, _, k)| self.modifiers.contains(*flag) && *k != self.keysym)
            .map(|(_, _, k)| *k)
            .collect();
        keys.push(self.keysym);
        keys
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, name, k) in MODIFIER_KEYS {
            if self.modifiers.contains(flag) && k != self.keysym {
                write!(f, "{name}+")?;
            }
        }
        match key_name(self.keysym) {
            Some(n) => f.write_str(&n),
            None => write!(f, "0x{:x}", self.keysym),
        }
    }
}

impl FromStr for Chord {
    type Err = KeyNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Chord::parse(s)
    }
}

impl Serialize for Chord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Chord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Chord::parse(&s).map_err(D::Error::custom)
    }
}

/// How the shuttle ring drives playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShuttleMode {
    /// J/K/L: stop, then forward/reverse tapped once per position (speed levels).
    #[default]
    Jkl,
    /// Play keys toggle playback; only the direction matters.
    Toggle,
}

/// What the jog wheel types, one tap per detent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JogMap {
    /// Clockwise detent (e.g. `Right`: next frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clockwise: Option<Chord>,
    /// Anticlockwise detent (e.g. `Left`: previous frame).
    #[serde(
        default,
        alias = "counterclockwise",
        skip_serializing_if = "Option::is_none"
    )]
    pub anticlockwise: Option<Chord>,
}

/// What the shuttle ring types.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShuttleMap {
    /// `jkl` (default) or `toggle`.
    #[serde(default)]
    pub mode: ShuttleMode,
    /// Stop (K); in toggle mode optional (the play key toggles playback off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Chord>,
    /// Play forward / faster (L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Chord>,
    /// Play reverse / faster backwards (J).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<Chord>,
    /// Overrides: the chords tapped on arriving at a position (−7..=7).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "ser_int_map",
        deserialize_with = "de_positions"
    )]
    pub positions: BTreeMap<i8, Vec<Chord>>,
}

/// A jog/shuttle profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (a file's stem when the file gives none).
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Jog wheel.
    #[serde(default)]
    pub jog: JogMap,
    /// Shuttle ring.
    #[serde(default)]
    pub shuttle: ShuttleMap,
    /// Controller buttons 0..=14, each held as a chord while the button is.
    #[serde(
        default,
        serialize_with = "ser_int_map",
        deserialize_with = "de_buttons"
    )]
    pub buttons: BTreeMap<u8, Chord>,
}

/// Highest controller button index a profile may map.
pub const MAX_BUTTON: u8 = 14;

/// Most taps one jog event produces (a coalesced fast spin is capped here).
pub const MAX_JOG_TAPS: u16 = 100;

fn ser_int_map<S, K, V>(m: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    K: fmt::Display,
    V: Serialize,
{
    s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
}

/// A TOML table with integer keys in `range` (TOML keys are strings).
fn de_int_map<'de, D, K, V>(
    d: D,
    what: &str,
    range: RangeInclusive<K>,
) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: FromStr + Ord + Copy + fmt::Display,
    V: Deserialize<'de>,
{
    BTreeMap::<String, V>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| {
            let n = k
                .trim()
                .parse::<K>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "{what} `{k}` is not a number in {}..={}",
                        range.start(),
                        range.end()
                    ))
                })?;
            Ok((n, v))
        })
        .collect()
}

fn de_buttons<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u8, Chord>, D::Error> {
    de_int_map(d, "button", 0..=MAX_BUTTON)
}

fn de_positions<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i8, Vec<Chord>>, D::Error> {
    de_int_map(d, "shuttle position", -7..=7)
}

/// Why a profile could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("jog profile {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The TOML is malformed or names something unknown.
    #[error("jog profile {origin}:{line}:{column}: {message}")]
    Parse {
        /// File path or built-in name.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Neither a built-in profile nor an existing file.
    #[error(
        "no jog profile `{spec}`: not a built-in profile ({}) and no such file",
        BUILTIN_NAMES.join(", ")
    )]
    Unknown {
        /// The name or path asked for.
        spec: String,
    },
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Profile {
    /// Parses TOML; `origin` (a path or built-in name) goes into errors and names a profile that
    /// has no `name`.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let mut p: Profile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
            ProfileError::Parse {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        if p.name.is_empty() {
            p.name = Path::new(origin)
                .file_stem()
                .map_or_else(|| origin.to_string(), |s| s.to_string_lossy().into_owned());
        }
        Ok(p)
    }

    /// The profile as TOML (what [`Profile::from_toml`] reads back).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a profile always serialises")
    }
}

/// Loads a profile from a TOML file.
pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Profile::from_toml(&text, &path.display().to_string())
}

/// The built-in profiles' names.
pub const BUILTIN_NAMES: &[&str] = &[
    "resolve",
    "premiere",
    "kdenlive",
    "blender",
    "lightworks",
    "avid",
];

/// The TOML of a built-in profile.
pub fn builtin_toml(name: &str) -> Option<&'static str> {
    let text = match name.to_ascii_lowercase().as_str() {
        "resolve" => RESOLVE,
        "premiere" => PREMIERE,
        "kdenlive" => KDENLIVE,
        "blender" => BLENDER,
        "lightworks" => LIGHTWORKS,
        "avid" => AVID,
        _ => return None,
    };
    Some(text)
}

/// A built-in profile by name (case-insensitive).
pub fn builtin(name: &str) -> Option<Profile> {
    let text = builtin_toml(name)?;
    Some(Profile::from_toml(text, name).expect("built-in profiles parse (tested)"))
}

/// The profile for `--jog-profile NAME|FILE`: a built-in name wins, anything else is read as a
/// file (write `./resolve` to load a file that shadows a built-in name).
pub fn lookup(spec: &str) -> Result<Profile, ProfileError> {
    if let Some(p) = builtin(spec) {
        return Ok(p);
    }
    let path = Path::new(spec);
    if path.exists() {
        load(path)
    } else {
        Err(ProfileError::Unknown {
            spec: spec.to_string(),
        })
    }
}

const RESOLVE: &str = r#"
name = "resolve"
description = "DaVinci Resolve, edit page (default DaVinci Resolve keyboard)"

[jog]
clockwise = "Right"          # next frame
anticlockwise = "Left"       # previous frame

[shuttle]
mode = "jkl"
stop = "k"
forward = "l"
reverse = "j"

[buttons]
0 = "i"                      # mark in
1 = "o"                      # mark out
2 = "alt+x"                  # clear in and out
3 = "space"                  # play/stop
4 = "Up"                     # previous edit
5 = "Down"                   # next edit
6 = "Home"                   # timeline start
7 = "End"                    # timeline end
8 = "m"                      # add marker
9 = "ctrl+b"                 # razor (split at playhead)
10 = "F9"                    # insert
11 = "F10"                   # overwrite
12 = "x"                     # mark clip
13 = "ctrl+z"                # undo
14 = "ctrl+shift+z"          # redo
"#;

const PREMIERE: &str = r#"
name = "premiere"
description = "Adobe Premiere Pro (default Windows shortcuts)"

[jog]
clockwise = "Right"          # step forward one frame
anticlockwise = "Left"       # step back one frame

[shuttle]
mode = "jkl"
stop = "k"
forward = "l"
reverse = "j"

[buttons]
0 = "i"                      # mark in
1 = "o"                      # mark out
2 = "ctrl+shift+x"           # clear in and out
3 = "space"                  # play/stop
4 = "Up"                     # go to previous edit point
5 = "Down"                   # go to next edit point
6 = "Home"                   # go to sequence start
7 = "End"                    # go to sequence end
8 = "m"                      # add marker
9 = "ctrl+k"                 # add edit
10 = "comma"                 # insert
11 = "period"                # overwrite
12 = "q"                     # ripple trim previous edit to playhead
13 = "ctrl+z"                # undo
14 = "ctrl+shift+z"          # redo
"#;

const KDENLIVE: &str = r#"
name = "kdenlive"
description = "Kdenlive (default shortcuts)"

[jog]
clockwise = "Right"          # forward one frame
anticlockwise = "Left"       # back one frame

[shuttle]
mode = "jkl"
stop = "k"
forward = "l"
reverse = "j"

[buttons]
0 = "i"                      # set zone in
1 = "o"                      # set zone out
2 = "space"                  # play/pause
3 = "alt+Left"               # previous snap point
4 = "alt+Right"              # next snap point
5 = "Home"                   # go to project start
6 = "End"                    # go to project end
7 = "shift+r"                # cut clip at playhead
8 = "v"                      # insert clip zone
9 = "b"                      # overwrite clip zone
10 = "z"                     # lift zone
11 = "shift+x"               # extract zone
12 = "g"                     # add guide
13 = "ctrl+z"                # undo
14 = "ctrl+shift+z"          # redo
"#;

const BLENDER: &str = r#"
name = "blender"
description = "Blender timeline (2.80+ default keymap, spacebar plays)"

[jog]
clockwise = "Right"          # next frame
anticlockwise = "Left"       # previous frame

[shuttle]
mode = "toggle"              # the play keys toggle playback; no speed levels
forward = "space"            # play
reverse = "ctrl+shift+space" # play reversed

[buttons]
0 = "space"                  # play/pause
1 = "ctrl+shift+space"       # play reversed
2 = "shift+Left"             # jump to start
3 = "shift+Right"            # jump to end
4 = "Down"                   # previous keyframe
5 = "Up"                     # next keyframe
6 = "i"                      # insert keyframe
7 = "m"                      # add marker
8 = "ctrl+Home"              # set start frame
9 = "ctrl+End"               # set end frame
10 = "k"                     # split strip (sequencer)
11 = "Escape"                # cancel playback (back to the start frame)
12 = "Home"                  # view all
13 = "ctrl+z"                # undo
14 = "ctrl+shift+z"          # redo
"#;

const LIGHTWORKS: &str = r#"
name = "lightworks"
description = "Lightworks (default keyboard)"

[jog]
clockwise = "Right"          # forward one frame
anticlockwise = "Left"       # back one frame

[shuttle]
mode = "jkl"
stop = "k"
forward = "l"
reverse = "j"

[buttons]
0 = "i"                      # mark in
1 = "o"                      # mark out
2 = "space"                  # play/stop
3 = "Home"                   # go to start
4 = "End"                    # go to end
5 = "v"                      # insert
6 = "b"                      # replace (overwrite)
7 = "ctrl+z"                 # undo
"#;

const AVID: &str = r#"
name = "avid"
description = "Avid Media Composer (default keyboard)"

[jog]
clockwise = "Right"          # step forward one frame
anticlockwise = "Left"       # step back one frame

[shuttle]
mode = "jkl"
stop = "k"
forward = "l"
reverse = "j"

[buttons]
0 = "i"                      # mark in
1 = "o"                      # mark out
2 = "g"                      # clear both marks
3 = "space"                  # play/stop
4 = "q"                      # go to in
5 = "w"                      # go to out
6 = "a"                      # go to previous edit
7 = "s"                      # go to next edit
8 = "t"                      # mark clip
9 = "v"                      # splice-in
10 = "b"                     # overwrite
11 = "z"                     # lift
12 = "x"                     # extract
13 = "ctrl+z"                # undo
14 = "ctrl+r"                # redo
"#;

/// Pure mapping from jog/shuttle events to key events through a profile (no I/O).
///
/// Key events carry `code: 0` (no physical key) and the modifiers held just before the event
/// (the X11 convention: a modifier's own press shows it not yet held). Keys shared by several
/// held chords (e.g. ctrl in two buttons' chords) are pressed once and released when the last
/// chord using them is released.
#[derive(Debug, Clone)]
pub struct JogMapper {
    profile: Profile,
    shuttle: i8,
    /// Keysym → how many chords hold it.
    held: BTreeMap<u32, u32>,
    /// Buttons down and the chord each holds.
    buttons: BTreeMap<u8, Chord>,
}

impl JogMapper {
    /// Shuttle centred, nothing held.
    pub fn new(profile: Profile) -> Self {
        JogMapper {
            profile,
            shuttle: 0,
            held: BTreeMap::new(),
            buttons: BTreeMap::new(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The shuttle position last seen.
    pub fn shuttle_position(&self) -> i8 {
        self.shuttle
    }

    /// Whether any key is held.
    pub fn holds_keys(&self) -> bool {
        !self.held.is_empty()
    }

    /// The key events for a jog, shuttle, controller button or release-all event; other events
    /// give nothing.
    pub fn map(&mut self, ev: &InputEvent) -> Vec<KeyEvent> {
        let mut out = Vec::new();
        match *ev {
            InputEvent::Jog { delta } => {
                let chord = if delta > 0 {
                    self.profile.jog.clockwise
                } else {
                    self.profile.jog.anticlockwise
                };
                if let Some(c) = chord {
                    for _ in 0..delta.unsigned_abs().min(MAX_JOG_TAPS) {
                        self.tap(&c, &mut out);
                    }
                }
            }
            InputEvent::Shuttle { position } => self.shuttle_to(position, &mut out),
            InputEvent::ControllerButton { index, pressed } => {
                if pressed {
                    let chord = self.profile.buttons.get(&index).copied();
                    if let (Some(c), false) = (chord, self.buttons.contains_key(&index)) {
                        self.buttons.insert(index, c);
                        self.press_chord(&c, &mut out);
                    }
                } else if let Some(c) = self.buttons.remove(&index) {
                    self.release_chord(&c, &mut out);
                }
            }
            InputEvent::ReleaseAll => return self.release_all(),
            _ => {}
        }
        out
    }

    /// Releases every held key (other keys first, modifiers last), then centres the shuttle
    /// (which taps stop when it was off centre, as a centred ring means stopped).
    pub fn release_all(&mut self) -> Vec<KeyEvent> {
        let mut out = Vec::new();
        self.buttons.clear();
        let held: Vec<u32> = self.held.keys().copied().collect();
        let is_mod = |k: &u32| MODIFIER_KEYS.iter().any(|(_, _, m)| m == k);
        let plain = held.iter().filter(|k| !is_mod(k));
        let mods = MODIFIER_KEYS
            .iter()
            .rev()
            .map(|(_, _, k)| k)
            .filter(|k| held.contains(*k));
        for &k in plain.chain(mods) {
            let modifiers = self.modifiers();
            self.held.remove(&k);
            out.push(key_event(k, modifiers, false));
        }
        self.shuttle_to(0, &mut out);
        out
    }

    /// Modifiers held now.
    fn modifiers(&self) -> Modifiers {
        MODIFIER_KEYS
            .iter()
            .filter(|(_, _, k)| self.held.contains_key(k))
            .fold(Modifiers::EMPTY, |m, (f, _, _)| m.union(*f))
    }

    fn press_key(&mut self, k: u32, out: &mut Vec<KeyEvent>) {
        let modifiers = self.modifiers();
        let n = self.held.entry(k).or_insert(0);
        *n += 1;
        if *n == 1 {
            out.push(key_event(k, modifiers, true));
        }
    }

    fn release_key(&mut self, k: u32, out: &mut Vec<KeyEvent>) {
        let modifiers = self.modifiers();
        let Some(n) = self.held.get_mut(&k) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.held.remove(&k);
            out.push(key_event(k, modifiers, false));
        }
    }

    fn press_chord(&mut self, c: &Chord, out: &mut Vec<KeyEvent>) {
        for k in c.press_order() {
            self.press_key(k, out);
        }
    }

    fn release_chord(&mut self, c: &Chord, out: &mut Vec<KeyEvent>) {
        for k in c.press_order().into_iter().rev() {
            self.release_key(k, out);
        }
    }

    fn tap(&mut self, c: &Chord, out: &mut Vec<KeyEvent>) {
        self.press_chord(c, out);
        self.release_chord(c, out);
    }

    /// The taps that bring the editor to the speed of position `b`.
    fn shuttle_to(&mut self, b: i8, out: &mut Vec<KeyEvent>) {
        let b = b.clamp(-7, 7);
        let a = std::mem::replace(&mut self.shuttle, b);
        if a == b {
            return;
        }
        let s = &self.profile.shuttle;
        let taps: Vec<Chord> = if let Some(list) = s.positions.get(&b) {
            list.clone()
        } else {
            let towards = |p: i8| if p > 0 { s.forward } else { s.reverse };
            match s.mode {
                ShuttleMode::Jkl => {
                    let n = usize::from(b.unsigned_abs());
                    s.stop
                        .into_iter()
                        .chain(std::iter::repeat_n(towards(b), n).flatten())
                        .collect()
                }
                ShuttleMode::Toggle if a.signum() == b.signum() => Vec::new(),
                ShuttleMode::Toggle => {
                    let stop = (a != 0).then(|| s.stop.or(towards(a))).flatten();
                    let start = (b != 0).then(|| towards(b)).flatten();
                    stop.into_iter().chain(start).collect()
                }
            }
        };
        for c in &taps {
            self.tap(c, out);
        }
    }
}

fn key_event(keysym: u32, modifiers: Modifiers, pressed: bool) -> KeyEvent {
    KeyEvent {
        code: 0,
        keysym,
        modifiers,
        pressed,
    }
}

/// Turns jog/shuttle input into key presses through a [`Profile`], typed by a keyboard sink.
pub struct JogProfileSink {
    keyboard: Box<dyn InputSink>,
    mapper: JogMapper,
}

impl fmt::Debug for JogProfileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JogProfileSink")
            .field("keyboard", &self.keyboard.name())
            .field("mapper", &self.mapper)
            .finish()
    }
}

impl JogProfileSink {
    /// Types `profile`'s actions through `keyboard`.
    pub fn new(profile: Profile, keyboard: Box<dyn InputSink>) -> Self {
        JogProfileSink {
            keyboard,
            mapper: JogMapper::new(profile),
        }
    }

    /// The mapping state.
    pub fn mapper(&self) -> &JogMapper {
        &self.mapper
    }
}

impl InputSink for JogProfileSink {
    fn name(&self) -> &'static str {
        "jog profile"
    }

    fn kinds(&self) -> InputKinds {
        InputKinds::JOG_SHUTTLE
    }

    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        match event {
            InputEvent::Jog { .. }
            | InputEvent::Shuttle { .. }
            | InputEvent::ControllerButton { .. } => {
                for k in self.mapper.map(event) {
                    self.keyboard.inject(&InputEvent::Key(k))?;
                }
                Ok(())
            }
            InputEvent::ReleaseAll => {
                // Release everything even if one release fails; then let the keyboard sink drop
                // whatever it still tracks.
                let mut first = None;
                for k in self.mapper.release_all() {
                    if let Err(e) = self.keyboard.inject(&InputEvent::Key(k)) {
                        first.get_or_insert(e);
                    }
                }
                if let Err(e) = self.keyboard.inject(&InputEvent::ReleaseAll) {
                    first.get_or_insert(e);
                }
                first.map_or(Ok(()), Err)
            }
            other => Err(InjectError::Unsupported {
                backend: "jog profile",
                kind: event_kind(other),
            }),
        }
    }

    fn flush(&mut self) -> Result<(), InjectError> {
        self.keyboard.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::RecordingSink;

    const K: u32 = 0x6b;
    const L: u32 = 0x6c;
    const J: u32 = 0x6a;
    const Z: u32 = 0x7a;

    /// (keysym, pressed) pairs.
    fn keys(events: &[KeyEvent]) -> Vec<(u32, bool)> {
        events.iter().map(|k| (k.keysym, k.pressed)).collect()
    }

    fn taps(ks: &[u32]) -> Vec<(u32, bool)> {
        ks.iter().flat_map(|&k| [(k, true), (k, false)]).collect()
    }

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "sightline-jog-profile-{}-{tag}.toml",
            std::process::id()
        ))
    }

    #[test]
    fn keysym_table() {
        assert_eq!(keysym_of("a"), Some(0x61));
        assert_eq!(keysym_of("I"), Some(0x69));
        assert_eq!(keysym_of("7"), Some(0x37));
        assert_eq!(keysym_of("F1"), Some(0xffbe));
        assert_eq!(keysym_of("f12"), Some(0xffc9));
        assert_eq!(keysym_of("F24"), Some(0xffd5));
        assert_eq!(keysym_of("F25"), None);
        assert_eq!(keysym_of("F0"), None);
        assert_eq!(keysym_of("F01"), None);
        assert_eq!(keysym_of("Left"), Some(0xff51));
        assert_eq!(keysym_of("left"), Some(0xff51));
        assert_eq!(keysym_of("space"), Some(0x20));
        assert_eq!(keysym_of("Return"), Some(0xff0d));
        assert_eq!(keysym_of("enter"), Some(0xff0d));
        assert_eq!(keysym_of("PageUp"), Some(0xff55));
        assert_eq!(keysym_of("Prior"), Some(0xff55));
        assert_eq!(keysym_of("PageDown"), Some(0xff56));
        assert_eq!(keysym_of("BackSpace"), Some(0xff08));
        assert_eq!(keysym_of("Delete"), Some(0xffff));
        assert_eq!(keysym_of("Insert"), Some(0xff63));
        assert_eq!(keysym_of("bracketleft"), Some(0x5b));
        assert_eq!(keysym_of("]"), Some(0x5d));
        assert_eq!(keysym_of("comma"), Some(0x2c));
        assert_eq!(keysym_of("equal"), Some(0x3d));
        assert_eq!(keysym_of("Escape"), Some(0xff1b));
        assert_eq!(keysym_of("nope"), None);
        assert_eq!(Chord::parse("ctrl").unwrap().keysym, 0xffe3);
        assert_eq!(Chord::parse("shift").unwrap().keysym, 0xffe1);
        assert_eq!(Chord::parse("alt").unwrap().keysym, 0xffe9);
        assert_eq!(Chord::parse("super").unwrap().keysym, 0xffeb);
        for name in [
            "a", "0", "F13", "Left", "PageDown", "space", "slash", "ctrl",
        ] {
            assert_eq!(Chord::parse(name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn chord_presses_modifiers_first_and_releases_them_last() {
        let c = Chord::parse("Shift+CTRL+z").unwrap();
        assert_eq!(c.to_string(), "ctrl+shift+z");
        assert_eq!(c.press_order(), vec![0xffe3, 0xffe1, Z]);
        let mut p = Profile::default();
        p.buttons.insert(0, c);
        let mut m = JogMapper::new(p);
        let down = m.map(&InputEvent::ControllerButton {
            index: 0,
            pressed: true,
        });
        assert_eq!(keys(&down), vec![(0xffe3, true), (0xffe1, true), (Z, true)]);
        let ctrl_shift = Modifiers::CONTROL.union(Modifiers::SHIFT);
        assert_eq!(down[0].modifiers, Modifiers::EMPTY);
        assert_eq!(down[1].modifiers, Modifiers::CONTROL);
        assert_eq!(down[2].modifiers, ctrl_shift);
        assert!(down.iter().all(|k| k.code == 0));
        let up = m.map(&InputEvent::ControllerButton {
            index: 0,
            pressed: false,
        });
        assert_eq!(
            keys(&up),
            vec![(Z, false), (0xffe1, false), (0xffe3, false)]
        );
        assert_eq!(up[0].modifiers, ctrl_shift);
        assert_eq!(up[2].modifiers, Modifiers::CONTROL);
        assert!(!m.holds_keys());
    }

    #[test]
    fn every_builtin_profile_parses() {
        for &name in BUILTIN_NAMES {
            let p = builtin(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.name, name);
            assert!(!p.description.is_empty());
            assert_eq!(p.jog.clockwise, Some(Chord::key(keysym::RIGHT)), "{name}");
            assert_eq!(
                p.jog.anticlockwise,
                Some(Chord::key(keysym::LEFT)),
                "{name}"
            );
            assert!(p.shuttle.forward.is_some() && p.shuttle.reverse.is_some());
            if p.shuttle.mode == ShuttleMode::Jkl {
                assert_eq!(p.shuttle.stop, Some(Chord::key(K)), "{name}");
                assert_eq!(p.shuttle.forward, Some(Chord::key(L)), "{name}");
                assert_eq!(p.shuttle.reverse, Some(Chord::key(J)), "{name}");
            }
            assert!(!p.buttons.is_empty());
            assert!(p.buttons.keys().all(|&b| b <= MAX_BUTTON));
            // Serialising and parsing again gives the same profile.
            assert_eq!(Profile::from_toml(&p.to_toml(), name).unwrap(), p);
        }
        assert_eq!(builtin("Resolve").unwrap().name, "resolve");
        assert!(builtin("vegas").is_none());
        assert_eq!(
            builtin("blender").unwrap().shuttle.mode,
            ShuttleMode::Toggle
        );
    }

    #[test]
    fn docs_list_every_builtin_button() {
        let doc = include_str!("../../../docs/jog-shuttle.md");
        for &name in BUILTIN_NAMES {
            let heading = format!("### `{name}`");
            let section = doc
                .split(&heading)
                .nth(1)
                .unwrap_or_else(|| panic!("docs lack {heading}"));
            let section = section.split("\n### ").next().unwrap();
            for (index, chord) in &builtin(name).unwrap().buttons {
                let row = section
                    .lines()
                    .find(|l| {
                        l.trim_start_matches(['|', ' '])
                            .starts_with(&format!("{index} "))
                    })
                    .unwrap_or_else(|| panic!("{name}: no row for button {index}"));
                assert!(row.contains(&format!("`{chord}`")), "{name}: {row}");
            }
        }
    }

    #[test]
    fn user_toml_round_trip() {
        let text = r#"
            description = "my editor"
            [jog]
            clockwise = "period"
            counterclockwise = "comma"
            [shuttle]
            stop = "space"
            forward = "shift+Right"
            reverse = "shift+Left"
            [shuttle.positions]
            0 = ["k"]
            "+7" = ["End"]
            -7 = ["Home"]
            [buttons]
            0 = "Control+Z"
            14 = "super+F24"
        "#;
        let path = temp_path("round-trip");
        std::fs::write(&path, text).unwrap();
        let p = load(&path).unwrap();
        assert_eq!(p.name, path.file_stem().unwrap().to_string_lossy());
        assert_eq!(p.jog.anticlockwise, Some(Chord::key(0x2c)));
        assert_eq!(p.shuttle.mode, ShuttleMode::Jkl);
        assert_eq!(p.shuttle.positions[&7], vec![Chord::key(keysym::END)]);
        assert_eq!(p.shuttle.positions[&-7], vec![Chord::key(keysym::HOME)]);
        assert_eq!(p.buttons[&0].to_string(), "ctrl+z");
        assert_eq!(p.buttons[&14].to_string(), "super+F24");

        let out = p.to_toml();
        std::fs::write(&path, &out).unwrap();
        let again = load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(again, p, "{out}");
        assert!(out.contains("\"ctrl+z\""), "{out}");

        // lookup: built-in names, files, and neither.
        assert_eq!(lookup("avid").unwrap().name, "avid");
        let missing = lookup("/nonexistent/profile.toml").unwrap_err();
        assert!(matches!(missing, ProfileError::Unknown { .. }));
        assert!(
            missing.to_string().contains("resolve, premiere"),
            "{missing}"
        );
        assert!(matches!(
            load("/nonexistent/profile.toml"),
            Err(ProfileError::Io { .. })
        ));
    }

    #[test]
    fn unknown_key_name_is_reported_with_position_and_valid_names() {
        let text = "name = \"x\"\n[buttons]\n0 = \"i\"\n3 = \"ctrl+frobnicate\"\n";
        let e = Profile::from_toml(text, "mine.toml").unwrap_err();
        let ProfileError::Parse {
            origin,
            line,
            column,
            message,
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!(origin, "mine.toml");
        assert_eq!((*line, *column), (4, 5), "{e}");
        assert!(message.contains("`frobnicate`"), "{message}");
        assert!(message.contains("ctrl+frobnicate"), "{message}");
        assert!(
            message.contains("F1-F24") && message.contains("PageDown"),
            "{message}"
        );
        assert!(
            e.to_string().starts_with("jog profile mine.toml:4:5: "),
            "{e}"
        );

        // Other mistakes carry positions too.
        let e = Profile::from_toml("[buttons]\n15 = \"a\"\n", "b.toml").unwrap_err();
        assert!(e.to_string().contains("button `15`"), "{e}");
        let e = Profile::from_toml("[jog]\nclockwize = \"a\"\n", "c.toml").unwrap_err();
        assert!(matches!(e, ProfileError::Parse { line: 2, .. }), "{e}");
        let e = Profile::from_toml("name = \n", "d.toml").unwrap_err();
        assert!(matches!(e, ProfileError::Parse { line: 1, .. }), "{e}");
        assert!(Chord::parse("ctrl+").is_err());
        assert!(Chord::parse("z+ctrl").is_err());
    }

    #[test]
    fn jkl_shuttle_sequence() {
        let mut m = JogMapper::new(builtin("resolve").unwrap());
        let mut go = |position| keys(&m.map(&InputEvent::Shuttle { position }));
        assert_eq!(go(0), vec![]);
        assert_eq!(go(3), taps(&[K, L, L, L]));
        assert_eq!(go(3), vec![]);
        assert_eq!(go(1), taps(&[K, L]));
        assert_eq!(go(0), taps(&[K]));
        assert_eq!(go(-2), taps(&[K, J, J]));
        assert_eq!(go(-9), taps(&[K, J, J, J, J, J, J, J]));
        assert!(!m.holds_keys());
    }

    #[test]
    fn toggle_shuttle_sequence() {
        let mut m = JogMapper::new(builtin("blender").unwrap());
        let space = keysym::SPACE;
        let mut go = |position| keys(&m.map(&InputEvent::Shuttle { position }));
        assert_eq!(go(2), taps(&[space]));
        assert_eq!(go(5), vec![]);
        assert_eq!(go(0), taps(&[space]));
        let reverse = vec![
            (keysym::CONTROL_L, true),
            (keysym::SHIFT_L, true),
            (space, true),
            (space, false),
            (keysym::SHIFT_L, false),
            (keysym::CONTROL_L, false),
        ];
        assert_eq!(go(-1), reverse);
        // Forward from reverse: stop reverse (with its own toggle), then play forward.
        let mut expected = reverse.clone();
        expected.extend(taps(&[space]));
        assert_eq!(go(1), expected);
    }

    #[test]
    fn jog_steps_both_ways() {
        let mut m = JogMapper::new(builtin("premiere").unwrap());
        let right = keysym::RIGHT;
        let left = keysym::LEFT;
        assert_eq!(
            keys(&m.map(&InputEvent::Jog { delta: 2 })),
            taps(&[right, right])
        );
        assert_eq!(keys(&m.map(&InputEvent::Jog { delta: -1 })), taps(&[left]));
        assert_eq!(keys(&m.map(&InputEvent::Jog { delta: 0 })), vec![]);
        assert_eq!(
            m.map(&InputEvent::Jog { delta: i16::MIN }).len(),
            2 * usize::from(MAX_JOG_TAPS)
        );
    }

    #[test]
    fn buttons_press_and_release_chords() {
        let mut m = JogMapper::new(builtin("resolve").unwrap());
        let btn = |index, pressed| InputEvent::ControllerButton { index, pressed };
        assert_eq!(keys(&m.map(&btn(0, true))), vec![(0x69, true)]);
        assert_eq!(keys(&m.map(&btn(0, true))), vec![]);
        assert_eq!(keys(&m.map(&btn(0, false))), vec![(0x69, false)]);
        assert_eq!(keys(&m.map(&btn(0, false))), vec![]);
        assert_eq!(
            keys(&m.map(&btn(2, true))),
            vec![(keysym::ALT_L, true), (0x78, true)]
        );
        // Overlapping chords share ctrl: pressed once, released with the last chord.
        assert_eq!(
            keys(&m.map(&btn(13, true))),
            vec![(keysym::CONTROL_L, true), (Z, true)]
        );
        assert_eq!(keys(&m.map(&btn(14, true))), vec![(keysym::SHIFT_L, true)]);
        assert_eq!(keys(&m.map(&btn(13, false))), vec![]);
        assert_eq!(
            keys(&m.map(&btn(14, false))),
            vec![
                (Z, false),
                (keysym::SHIFT_L, false),
                (keysym::CONTROL_L, false)
            ]
        );
        assert_eq!(
            keys(&m.map(&btn(2, false))),
            vec![(0x78, false), (keysym::ALT_L, false)]
        );
        // Unmapped and out-of-range buttons do nothing.
        let mut l = JogMapper::new(builtin("lightworks").unwrap());
        assert_eq!(l.map(&btn(12, true)), vec![]);
        assert_eq!(l.map(&btn(200, true)), vec![]);
        assert!(!m.holds_keys() && !l.holds_keys());
    }

    #[test]
    fn sink_types_through_the_keyboard_and_release_all_mid_chord() {
        let rec = RecordingSink::new();
        let mut sink = JogProfileSink::new(builtin("avid").unwrap(), Box::new(rec.clone()));
        assert_eq!(sink.kinds(), InputKinds::JOG_SHUTTLE);
        sink.inject(&InputEvent::Shuttle { position: 2 }).unwrap();
        sink.inject(&InputEvent::ControllerButton {
            index: 13,
            pressed: true,
        })
        .unwrap();
        assert!(sink.mapper().holds_keys());
        sink.inject(&InputEvent::ReleaseAll).unwrap();
        sink.flush().unwrap();
        assert!(!sink.mapper().holds_keys());
        assert_eq!(sink.mapper().shuttle_position(), 0);

        let got = rec.events();
        let (last, key_events) = got.split_last().unwrap();
        assert_eq!(*last, InputEvent::ReleaseAll);
        let key_events: Vec<KeyEvent> = key_events
            .iter()
            .map(|e| match e {
                InputEvent::Key(k) => *k,
                other => panic!("{other:?}"),
            })
            .collect();
        let mut expected = taps(&[K, L, L]);
        expected.extend([
            (keysym::CONTROL_L, true),
            (Z, true),
            // ReleaseAll: the key, then the modifier, then the shuttle stops.
            (Z, false),
            (keysym::CONTROL_L, false),
            (K, true),
            (K, false),
        ]);
        assert_eq!(keys(&key_events), expected);
        // The button's later release finds nothing held.
        sink.inject(&InputEvent::ControllerButton {
            index: 13,
            pressed: false,
        })
        .unwrap();
        assert_eq!(rec.events().len(), got.len());
        assert!(matches!(
            sink.inject(&InputEvent::PointerMove { x: 0, y: 0 }),
            Err(InjectError::Unsupported { .. })
        ));
    }
}
