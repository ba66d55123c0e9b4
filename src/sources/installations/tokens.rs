//! Installation tokens: a TOML file `[tokens] "inst-0007" = "..."` that only its owner may read.
//! Tokens are [`Secret`]s: never printed, logged or written.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::Secret;
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: HashMap<String, String>,
}

/// Reads the tokens file, refusing it when group or others have any permission on it.
pub fn load(path: &Path) -> Result<HashMap<String, Secret>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Usage(format!("{}: cannot read tokens file: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Usage(format!(
                "{}: tokens file is readable by others (mode {mode:04o}); make it private with `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    // The TOML error's message could quote a token: name only the line.
    let parsed: TokensFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Error::Usage(format!(
            "{}:{}: not a tokens file (expected `[tokens]` with \"installation-id\" = \"token\" lines)",
            path.display(),
            line.unwrap_or(1)
        ))
    })?;
    Ok(parsed
        .tokens
        .into_iter()
        .map(|(k, v)| (k, Secret::new(v)))
        .collect())
}
