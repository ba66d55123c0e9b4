//! A local S3-compatible server for the tests: moto's server mode (PyPI, pinned in
//! `tests/requirements.txt`) on 127.0.0.1, one per test process, a fresh bucket per lake.
//! moto honours `If-None-Match: *` but not atomically, so the races are proven on
//! `object_store`'s own stores (`src/lake/object_log.rs`); moto checks the wire format.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Credentials the lake's writers use against moto (which accepts any): finding them in a
/// log, an error or a file is a leak.
pub const ACCESS_KEY: &str = "AKIATESTVATEN0000001";
pub const SECRET_KEY: &str = "s3-sekrit-4c1e9a-never-printed";

/// The server's endpoint (`http://127.0.0.1:<port>`), started on first use.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto_server.py");
        let mut child = Command::new(crate::tools::python())
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "moto's server did not start");
        // The child stops by itself when this test process ends (it watches its parent).
        std::mem::forget(child);
        format!("http://127.0.0.1:{port}")
    })
}

/// Creates a fresh, empty bucket and returns its name.
pub fn new_bucket() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "lake-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let host = endpoint().trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    name
}

/// Downloads what the bucket holds under `prefix` (the lake as an analyst sees it) into
/// `dest`, with boto3; returns the number of objects.
pub fn download(bucket: &str, prefix: &str, dest: &Path) -> usize {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_download.py");
    let out = Command::new(crate::tools::python())
        .arg(script)
        .args([endpoint(), bucket, prefix])
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Every key in the bucket under `prefix`, the commit scheme's own folders included.
pub fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_download.py");
    let out = Command::new(crate::tools::python())
        .arg(script)
        .args([endpoint(), bucket, prefix, "--list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Deletes `key` from `bucket`, or (with `Some(bytes)`) writes it, with boto3: what another
/// party does to a bucket.
pub fn set(bucket: &str, key: &str, bytes: Option<&[u8]>) {
    let code = "import boto3, sys\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='x', aws_secret_access_key='y', region_name='us-east-1')\n\
        data = sys.stdin.buffer.read()\n\
        if sys.argv[4] == 'put':\n    s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=data)\n\
        else:\n    s3.delete_object(Bucket=sys.argv[2], Key=sys.argv[3])\n";
    let mut child = Command::new(crate::tools::python())
        .args(["-c", code, endpoint(), bucket, key])
        .arg(if bytes.is_some() { "put" } else { "delete" })
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bytes.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
