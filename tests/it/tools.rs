//! The outside tools the tests check vaten against, provisioned by the tests themselves so
//! that `cargo test --workspace` passes on a fresh machine with nothing installed by hand:
//!
//! - Python with pyarrow and DuckDB (the independent lake readers): a virtual environment
//!   created once under cargo's `target/tmp/` from `tests/requirements.txt` (PyPI), guarded by a
//!   file lock so parallel tests and processes build it once;
//! - Chromium (the report rendering test): found on the `PATH`, else installed from Debian's
//!   packages when the tests run as root, else a clear failure.
//!
//! A missing tool is never a skipped test: each helper panics with what to do.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// The Python interpreter of the tests' virtual environment (pyarrow and DuckDB importable).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&PYTHON, provision_python)
}

/// Headless Chromium.
pub fn chromium() -> PathBuf {
    static CHROMIUM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&CHROMIUM, provision_chromium)
}

/// Provisions once per test process; a failure is kept, so that the other tests fail at once
/// with the same message instead of trying again (pip's retries take minutes without PyPI).
fn once(cell: &OnceLock<Result<PathBuf, String>>, provision: fn() -> PathBuf) -> PathBuf {
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(provision).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "provisioning failed".into())
        })
    });
    match result {
        Ok(path) => path.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn tmp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Holds an exclusive lock on `name` under the target's tmp folder until dropped.
fn lock(name: &str) -> File {
    let file = File::create(tmp_dir().join(name)).unwrap();
    file.lock().unwrap();
    file
}

fn provision_python() -> PathBuf {
    let env = tmp_dir().join("python-env");
    let python = env.join("bin").join("python3");
    // The marker holds the requirements and the base interpreter it was built from: a changed
    // pin or another `VATEN_TEST_PYTHON` rebuilds it; and the readers must really import (a
    // base Python replaced under the environment breaks it).
    let base = std::env::var("VATEN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let marker = env.join("vaten-requirements.txt");
    let wanted = format!("{REQUIREMENTS}# base: {base}\n");
    let ready = || {
        std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
            && Command::new(&python)
                .args([
                    "-c",
                    "import pyarrow, duckdb, power_grid_model, pyspark, moto.server",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return python;
    }
    let _guard = lock("python-env.lock");
    if ready() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&env);
    run(
        Command::new(&base).args(["-m", "venv"]).arg(&env),
        &format!("creating the tests' Python environment with `{base} -m venv` (Python 3 with venv is needed)"),
    );
    let requirements = tmp_dir().join("python-requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).unwrap();
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "installing pyarrow, duckdb, power-grid-model and pyspark from PyPI into the tests' Python environment",
    );
    std::fs::write(&marker, &wanted).unwrap();
    python
}

fn provision_chromium() -> PathBuf {
    debian_tool(
        &["chromium", "chromium-browser"],
        "chromium",
        "the report rendering test needs Chromium",
    )
}

/// A Java runtime for PySpark (17, Debian 12's default).
pub fn java() -> PathBuf {
    static JAVA: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&JAVA, || {
        debian_tool(
            &["java"],
            "default-jre-headless",
            "the federation test runs Spark, which needs Java",
        )
    })
}

/// The first of `names` on the PATH; else, when the tests run as root on Debian, Debian's
/// `package` installed once under a lock; else a failure saying what to install.
fn debian_tool(names: &[&str], package: &str, why: &str) -> PathBuf {
    let find = || names.iter().find_map(|name| on_path(name));
    if let Some(found) = find() {
        return found;
    }
    let _guard = lock(&format!("{package}.lock"));
    if let Some(found) = find() {
        return found;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    assert!(
        root && on_path("apt-get").is_some(),
        "{why}: install Debian's `{package}` package (or run the tests as root on Debian, and \
         they install it)"
    );
    run(
        Command::new("apt-get").arg("update").arg("-qq"),
        &format!("apt-get update (to install {package})"),
    );
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("installing Debian's {package} package"),
    );
    find().unwrap_or_else(|| panic!("{} on the PATH after installing {package}", names[0]))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
