//! Flags, parsed by hand from one table per command, so `--help` and the parsing come from the
//! same place and cannot drift apart.
//!
//! Only the server's flags (`serve`, `demo`) are also read from environment variables, and each
//! names its variable in full in its table entry: a variable derived from any flag's name would
//! let one exported for one command reach another (a publish token exported for `publish` went
//! out in `watch`'s stream URL, where proxies log it).

use std::collections::HashMap;

/// A flag of a command: `--name VALUE` (or a switch).
#[derive(Debug)]
pub struct Flag {
    /// The name after `--`.
    pub name: &'static str,
    /// The value's placeholder; `None` for a switch.
    pub value: Option<&'static str>,
    /// What it does, for `--help`.
    pub help: &'static str,
    /// May be given more than once; the values are joined with `,`.
    pub repeatable: bool,
    /// The environment variable read when the flag is not given; `None`: the command line only.
    pub env: Option<&'static str>,
}

impl Flag {
    /// A flag read from the command line only.
    pub const fn new(name: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
        Flag { name, value, help, repeatable: false, env: None }
    }

    /// The same flag, also read from the environment variable `var` when it is not given.
    pub const fn or_env(self, var: &'static str) -> Flag {
        Flag { env: Some(var), ..self }
    }

    /// The same flag, allowed more than once.
    pub const fn repeatable(self) -> Flag {
        Flag { repeatable: true, ..self }
    }
}

/// Parsed flags: name to value (`""` for a switch).
pub type Flags = HashMap<&'static str, String>;

/// Parses `--name value`, `--name=value` and switches against `specs`; other words are returned
/// in order as positionals. An unset flag with an `env` variable falls back to that variable; a
/// switch's variable turns it on when it is `1`, `true` or `yes`.
pub fn parse_flags(args: &[String], specs: &[&[Flag]]) -> Result<(Flags, Vec<String>), String> {
    let all = || specs.iter().flat_map(|s| s.iter());
    let mut flags = Flags::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = body.split_once('=').map_or((body, None), |(n, v)| (n, Some(v.to_owned())));
        let spec = all().find(|f| f.name == name).ok_or_else(|| format!("unknown flag --{name} (see --help)"))?;
        let value = match (spec.value, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("--{name} takes no value")),
            (Some(_), Some(v)) => v,
            (Some(placeholder), None) => {
                i += 1;
                args.get(i - 1).cloned().ok_or_else(|| format!("--{name} needs a value {placeholder}"))?
            }
        };
        match flags.get_mut(spec.name) {
            Some(old) if spec.repeatable => {
                old.push(',');
                old.push_str(&value);
            }
            _ => {
                flags.insert(spec.name, value);
            }
        }
    }
    for spec in all() {
        let Some(var) = spec.env else { continue };
        if !flags.contains_key(spec.name)
            && let Ok(value) = std::env::var(var)
        {
            match spec.value {
                Some(_) => {
                    flags.insert(spec.name, value);
                }
                None if matches!(value.as_str(), "1" | "true" | "yes") => {
                    flags.insert(spec.name, String::new());
                }
                None => {}
            }
        }
    }
    Ok((flags, positional))
}

/// The `--help` text of a command from its flag tables.
pub fn usage_of(command: &str, synopsis: &str, specs: &[&[Flag]]) -> String {
    let mut out = format!(
        "Usage: sse-progress {command} {synopsis}\n\nOptions (each also from the environment variable shown; \
         a switch's variable\nturns it on with 1, true or yes):\n"
    );
    for spec in specs.iter().flat_map(|s| s.iter()) {
        let left = match spec.value {
            Some(v) => format!("--{} {v}", spec.name),
            None => format!("--{}", spec.name),
        };
        out.push_str(&format!("  {left:<32} {}\n", spec.help));
        if let Some(var) = spec.env {
            out.push_str(&format!("  {:<32} [env: {var}]\n", ""));
        }
    }
    out.push_str("\nDEBUG=sse:* (or sse:http,sse:conn,sse:tracker,sse:server) logs to stderr.\n");
    out
}
