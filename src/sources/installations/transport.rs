//! Which installation URLs a pass may use. A token travels with every request: `https` always
//! (the system's trusted roots); plain `http` to this machine, and to private and VPN addresses
//! (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) with a warning per run; to anything else
//! (a public address, or a host name that could resolve to one) only when the registry opts
//! that installation in (`installation_http_public = true`). A refused URL fails that
//! installation's pull with a warning; the others go on.

use std::net::IpAddr;

/// How a URL may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `https`, or `http` to this machine.
    Fine,
    /// `http` to a private or VPN address: allowed, said once per run.
    PlainPrivate,
    /// `http` to a public address, allowed by the registry.
    PlainPublicAllowed,
    /// Not used; the reason.
    Refused(String),
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 10
                || (a == 172 && (16..=31).contains(&b))
                || (a == 192 && b == 168)
                || (a == 100 && (64..=127).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Judges `url` for an installation whose registry row says `http_public`.
pub fn judge(url: &str, http_public: bool) -> Transport {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Transport::Refused(format!("installation_url `{url}` is not a URL"));
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Transport::Refused(
            "installation_url carries a user name or password; the token is the only credential"
                .into(),
        );
    }
    match parsed.scheme() {
        "https" => return Transport::Fine,
        "http" => {}
        other => {
            return Transport::Refused(format!(
                "installation_url scheme `{other}` is neither https nor http"
            ))
        }
    }
    let host = parsed.host_str().unwrap_or("");
    if crate::config::is_loopback_host(host) {
        return Transport::Fine;
    }
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    match ip {
        Some(ip) if private(ip) => Transport::PlainPrivate,
        _ if http_public => Transport::PlainPublicAllowed,
        _ => Transport::Refused(
            "plain http to a public address (or a host name) would send the token unencrypted: use https, or set installation_http_public = true for it in the registry"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_where_the_token_stays_off_the_internet() {
        assert!(matches!(
            judge("ftp://10.0.0.1", true),
            Transport::Refused(_)
        ));
        assert!(matches!(
            judge("http://user:pw@10.0.0.1", false),
            Transport::Refused(_)
        ));
        assert_eq!(judge("https://inst.example.org", false), Transport::Fine);
        assert_eq!(judge("http://127.0.0.1:8080/x", false), Transport::Fine);
        assert_eq!(judge("http://[::1]:9", false), Transport::Fine);
        for private in [
            "http://10.8.0.11",
            "http://172.20.1.1",
            "http://192.168.1.5:80",
            "http://100.100.1.1",
            "http://[fd00::5]",
        ] {
            assert_eq!(judge(private, false), Transport::PlainPrivate, "{private}");
        }
        for public in [
            "http://8.8.8.8",
            "http://172.32.0.1",
            "http://100.128.0.1",
            "http://inst7.example.org",
        ] {
            assert!(
                matches!(judge(public, false), Transport::Refused(_)),
                "{public}"
            );
            assert_eq!(
                judge(public, true),
                Transport::PlainPublicAllowed,
                "{public}"
            );
        }
    }
}
