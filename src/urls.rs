//! URLs: every one checked with the HTTP client's own parser before any request, and shown without secrets.

use std::net::Ipv6Addr;
use ureq::http::Uri;

/// The proxy variables, in the spellings `http::proxy_for` reads.
pub const PROXY_VARS: [&str; 6] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// An http(s) URL as ureq reads it: scheme http or https, a host, a port 1-65535 if one is given.
/// The error is one line naming `from` and the value (without user info or query).
pub fn check_http_url(from: &str, value: &str) -> Result<(), String> {
    let problem = match value.parse::<Uri>() {
        Err(e) => Some(e.to_string()),
        Ok(uri) => match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                authority_problem(&uri)
            }
            _ => Some("the scheme must be http:// or https://".to_string()),
        },
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(format!(
            "{from}: expected an http:// or https:// URL, found {:?}: {p}",
            redact(value)
        )),
    }
}

/// A proxy URL as ureq reads it, limited to what this build can use (http:// and https://
/// proxies; ureq without its socks feature would abort on a socks proxy).
pub fn parse_proxy(var: &str, value: &str) -> Result<ureq::Proxy, String> {
    let value = value.trim();
    let shown = redact(value);
    let expected = "expected a proxy URL like http://proxy:3128";
    let proxy = ureq::Proxy::new(value)
        .map_err(|_| format!("{var}: {expected}, found {shown:?}: it does not parse"))?;
    let scheme = proxy
        .uri()
        .scheme_str()
        .unwrap_or("http")
        .to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{var}: {scheme}:// proxies are not supported; {expected} or https://proxy:3128, found {shown:?}"
        ));
    }
    match authority_problem(proxy.uri()) {
        None => Ok(proxy),
        Some(p) => Err(format!("{var}: {expected}, found {shown:?}: {p}")),
    }
}

/// Every proxy variable that is set must be a usable proxy URL, whichever destination uses it.
pub fn check_proxy_env(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    for var in PROXY_VARS {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            parse_proxy(var, &value)?;
        }
    }
    Ok(())
}

/// What is wrong with the host and port of a parsed URL, if anything.
fn authority_problem(uri: &Uri) -> Option<String> {
    let Some(authority) = uri.authority() else {
        return Some("there is no host".to_string());
    };
    let host = authority.host();
    if host.is_empty() {
        return Some("the host is empty".to_string());
    }
    if let Some(inner) = host.strip_prefix('[') {
        if inner
            .strip_suffix(']')
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .is_none()
        {
            return Some(format!("{host:?} is not an IPv6 address"));
        }
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Some(format!("{host:?} is not a host name"));
    }
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    let port = host_port.get(host.len()..).unwrap_or("");
    match port.strip_prefix(':') {
        None if port.is_empty() => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && matches!(p.parse::<u16>(), Ok(1..)) => {
            None
        }
        _ => Some(format!(
            "the port {:?} is not a number 1-65535",
            port.trim_start_matches(':')
        )),
    }
}

/// Scheme, host and port of a URL, for messages.
pub fn origin(url: &str) -> String {
    let shown = redact(url);
    let after = shown.find("://").map_or(0, |i| i + 3);
    match shown[after..].find('/') {
        Some(i) => shown[..after + i].to_string(),
        None => shown,
    }
}

/// A URL fit for a log line: no `user:password@` and no query string (either may hold a token).
pub fn redact(url: &str) -> String {
    let after = url.find("//").map_or(0, |i| i + 2);
    let (scheme, rest) = url.split_at(after);
    // Up to the first '/', whatever '?' or '#' a password may hold.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    format!("{scheme}{rest}")
}

/// The host of an http(s) URL, without port or path.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls_pass() {
        for url in [
            "http://127.0.0.1:8080/x",
            "https://ce.us-east-1.amazonaws.com",
            "HTTP://broker/",
            "http://[::1]:80/hook?x=1",
            "https://user:pw@broker.example:65535/a",
            "http://my_host.local:1",
        ] {
            assert_eq!(check_http_url("target", url), Ok(()), "{url}");
        }
    }

    #[test]
    fn bad_urls_say_where_and_why() {
        for (url, why) in [
            ("http://127.0.0.1:99999/x", "port \"99999\""),
            ("http://127.0.0.1:0/x", "port \"0\""),
            ("http://[::1/x", "invalid authority"),
            ("http://[::g]/x", "not an IPv6 address"),
            ("http://h:8o80/x", "port \"8o80\""),
            ("http://h:/x", "port \"\""),
            ("http://:80/x", "host is empty"),
            ("http:///x", "invalid format"),
            ("http://h x/", "invalid uri character"),
            ("http://h%41/", "invalid authority"),
            ("http://h!/", "not a host name"),
            ("ftp://x", "scheme"),
            ("broker:8080", "scheme"),
            ("", "empty"),
        ] {
            let e = check_http_url("--target", url).unwrap_err();
            assert!(
                e.starts_with("--target: expected an http:// or https:// URL") && e.contains(why),
                "{url}: {e}"
            );
        }
        let e = check_http_url("CONNECTOR_TARGET", "http://u:s3cret@h:99999/x?t=tok").unwrap_err();
        assert!(!e.contains("s3cret") && !e.contains("tok"), "{e}");
    }

    #[test]
    fn proxies_are_http_or_https_with_a_host_and_a_real_port() {
        for ok in [
            "http://proxy:3128",
            "proxy:3128",
            "https://u:p@proxy",
            "http://[::1]:8",
        ] {
            assert!(parse_proxy("HTTPS_PROXY", ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "socks5://127.0.0.1:1080",
                "socks5:// proxies are not supported",
            ),
            ("socks5h://proxy", "socks5h:// proxies are not supported"),
            ("socks://proxy", "not supported"),
            ("ftp://proxy", "does not parse"),
            ("http://proxy:99999", "port \"99999\""),
            ("http://proxy:31x8", "port"),
            ("garbage with spaces", "does not parse"),
            ("http://", "does not parse"),
            ("http://[::1", "does not parse"),
        ] {
            let e = parse_proxy("ALL_PROXY", bad).unwrap_err();
            assert!(
                e.starts_with("ALL_PROXY: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
        let e = parse_proxy("http_proxy", "http://u:s3cret@proxy:99999").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn every_proxy_variable_that_is_set_is_checked() {
        let env = |k: &str| (k == "all_proxy").then(|| "socks5://p:1080".to_string());
        assert!(
            check_proxy_env(&env)
                .unwrap_err()
                .starts_with("all_proxy: ")
        );
        assert_eq!(check_proxy_env(&|_| Some(" ".into())), Ok(()));
        assert_eq!(check_proxy_env(&|_| None), Ok(()));
    }

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(origin("http://127.0.0.1:9/a/b"), "http://127.0.0.1:9");
        assert_eq!(origin("https://h"), "https://h");
        assert_eq!(origin("https://user:s3cret@h:8/x?token=t"), "https://h:8");
    }

    #[test]
    fn redact_hides_user_info_and_query() {
        assert_eq!(
            redact("https://user:s3cret@broker:8443/hook?token=t0p#f"),
            "https://broker:8443/hook"
        );
        assert_eq!(redact("http://broker/a@b"), "http://broker/a@b");
        assert_eq!(redact("http://127.0.0.1:9/"), "http://127.0.0.1:9/");
        assert_eq!(redact("https://u:p#ss@h/x"), "https://h/x");
        assert_eq!(redact("//u:pw@h/x"), "//h/x");
    }

    #[test]
    fn the_host_has_no_user_port_or_brackets() {
        assert_eq!(url_host("http://user:pw@[::1]:80/x"), "::1");
    }
}
