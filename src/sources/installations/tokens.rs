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

/// Reads the tokens file, refusing a symbolic link, a file owned by another user, and one that
/// group or others have any permission on. Mode and owner are checked on the opened file
/// itself, then read from it: a file swapped in between cannot slip through.
pub fn load(path: &Path) -> Result<HashMap<String, Secret>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    // No link followed; no wait on a FIFO put in its place; not inherited by children.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Usage(format!(
                    "{shown}: the tokens file is a symbolic link; point tokens_file at the file itself"
                ))
            } else {
                Error::Usage(format!("{shown}: cannot read tokens file: {e}"))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Usage(format!("{shown}: cannot read tokens file: {e}")))?;
    if !meta.is_file() {
        return Err(Error::Usage(format!(
            "{shown}: the tokens file is not a regular file"
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(Error::Usage(format!(
            "{shown}: the tokens file belongs to user {} but vaten runs as user {me}; it must be the running user's own",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Usage(format!(
            "{shown}: tokens file is readable by others (mode {mode:04o}); make it private with `chmod 600 {shown}`"
        )));
    }
    // Tokens files are small; a huge one is a mistake, not a file to read into memory.
    if meta.len() > 1 << 20 {
        return Err(Error::Usage(format!(
            "{shown}: the tokens file is larger than 1 MiB ({} bytes); it holds one short line per installation",
            meta.len()
        )));
    }
    let mut text = String::new();
    (&mut file)
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
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
