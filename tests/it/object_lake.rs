//! The lake on the local S3-compatible server (moto, `crate::s3`): two writers on two
//! machines, a writer killed at each of the bucket's commit points, and the credentials.
//! The same ingest, kill and incremental tests as on disk run there too (`…_on_s3`).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use vaten::fake::Fault;

use crate::common::*;
use crate::robustness::{five_day_feed, reference_lake, NOW};

/// A second configuration for the same bucket: another machine, with its own working copy.
fn second_machine(env: &Env, lock_wait_s: f64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(env.config()).unwrap();
    let text = text
        .replace("cache = \"cache\"", "cache = \"cache-b\"")
        .replace("lock_wait_s = 6", &format!("lock_wait_s = {lock_wait_s}"));
    let path = env.dir.path().join("vaten-b.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn with_config(env: &Env, config: &std::path::Path, args: &[&str]) -> std::process::Command {
    env.command_with(config, NOW, args)
}

#[test]
fn two_machines_ingesting_at_once_one_waits_on_the_lease() {
    let expected = reference_lake();
    on_s3(|| {
        let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
        five_day_feed(&env);
        // Slow pages keep the first ingest on the lease longer than the second one waits.
        env.server
            .set_faults(vec![Some(Fault::Slow(Duration::from_millis(300)))]);
        let other = second_machine(&env, 1.0);
        let first = env
            .command(NOW, &["ingest", "grid"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1_500));
        let second = with_config(&env, &other, &["ingest", "grid"])
            .output()
            .unwrap();
        let pid = first.id();
        let first = first.wait_with_output().unwrap();
        assert!(first.status.success(), "{}", stderr(&first));
        assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
        let err = stderr(&second);
        assert!(
            err.contains("locked by another writer")
                && err.contains(&format!("pid {pid} "))
                && err.contains("running `vaten ingest grid`"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        assert_eq!(lake_rows(&env.lake()), expected);

        // The second machine, once the lease is free, finds nothing new and leaves the bucket
        // as it is; its working copy (what its queries scan) equals the bucket.
        env.server.set_faults(vec![]);
        let again = with_config(&env, &other, &["ingest", "grid"])
            .output()
            .unwrap();
        assert_ok(&again);
        assert_eq!(lake_rows(&env.lake()), expected);
        let copy_b = env.dir.path().join("cache-b").join(
            env.lake_dir()
                .strip_prefix(env.dir.path().join("cache"))
                .unwrap(),
        );
        assert_eq!(lake_rows(&vaten::lake::Lake::open_read(&copy_b)), expected);

        // The credentials are nowhere: not in any output, any file of either machine, or the
        // bucket.
        for out in [&first, &second, &again] {
            for text in [
                stderr(out),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ] {
                assert!(!text.contains(crate::s3::SECRET_KEY), "{text}");
            }
        }
        let bucket_copy = env.readable_dir();
        let everything = [env.dir.path(), bucket_copy.as_path()]
            .into_iter()
            .flat_map(|d| files_below(d).into_iter().map(move |f| d.join(f)));
        let mut scanned = 0;
        for file in everything {
            scanned += 1;
            let bytes = std::fs::read(&file).unwrap();
            let found = bytes
                .windows(crate::s3::SECRET_KEY.len())
                .any(|w| w == crate::s3::SECRET_KEY.as_bytes());
            assert!(!found, "the secret key is in {}", file.display());
        }
        // Two working copies, the bucket's copies and the configuration: many files.
        assert!(scanned > 50, "{scanned} files scanned");
    });
}

#[test]
fn a_writer_killed_at_the_buckets_commit_points_is_completed_or_rolled_back() {
    let expected = reference_lake();
    on_s3(|| {
        for point in ["remote-staged", "remote-log"] {
            let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
            five_day_feed(&env);
            let killed = env
                .command(NOW, &["ingest", "grid"])
                .env("VATEN_INJECT_FAULT", format!("crash:{point}"))
                .output()
                .unwrap();
            assert_eq!(
                killed.status.signal(),
                Some(9),
                "{point}: {}",
                stderr(&killed)
            );
            let bucket = env.bucket.as_ref().unwrap();
            let staged =
                |keys: &[String]| keys.iter().filter(|k| k.starts_with("_staging/")).count();
            let before = crate::s3::keys(bucket, "coop");
            assert!(staged(&before) > 0, "{point}: the change was uploaded");
            let logged = before.iter().filter(|k| k.starts_with("_log/")).count();

            // The next writer (after the lease ran out) completes the logged change or drops
            // the unlogged one, and says which; what another machine reads meanwhile is tested
            // in `src/lake/remote.rs` on the in-memory store.
            let rerun = env.vaten(NOW, &["ingest", "grid"]);
            assert_ok(&rerun);
            let err = stderr(&rerun);
            let said = match point {
                "remote-staged" => "rolled back uncommitted change",
                _ => "completed interrupted change",
            };
            assert!(err.contains(said), "{point}: {err}");
            assert_eq!(lake_rows(&env.lake()), expected, "{point}");
            let after = crate::s3::keys(bucket, "coop");
            assert_eq!(
                staged(&after),
                0,
                "{point}: no upload left behind: {after:?}"
            );
            assert!(
                after.iter().filter(|k| k.starts_with("_log/")).count() > logged,
                "{point}"
            );
        }
    });
}

#[test]
fn a_missing_bucket_is_one_clear_line_without_credentials() {
    let token = "FwoGZXIvYXdzEJr-session-token-vaten-test";
    on_s3(|| {
        let env = Env::new(&registry(&[EAN_A]));
        let bucket = env.bucket.clone().unwrap();
        let text = std::fs::read_to_string(env.config())
            .unwrap()
            .replace(&format!("s3://{bucket}/"), "s3://no-such-bucket-vaten/");
        let config = env.dir.path().join("missing.toml");
        std::fs::write(&config, text).unwrap();
        let out = env
            .command_with(&config, NOW, &["ingest", "grid"])
            .env("AWS_SESSION_TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("s3://no-such-bucket-vaten/coop"), "{err}");
        for secret in [crate::s3::SECRET_KEY, token] {
            assert!(!err.contains(secret), "{err}");
        }
        assert!(!err.contains('<'), "no response body: {err}");
    });
}
