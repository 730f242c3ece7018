//! Outbound HTTP for webhooks: target checks and one POST.
//!
//! A target's host is resolved once; the address is checked (loopback,
//! private, link-local, cloud metadata and other non-public ranges are
//! refused unless the host is on the `webhook-allow-hosts` list) and the
//! connection goes to exactly that address, so a DNS answer cannot change
//! between the check and the connection. Redirects are not followed (a 3xx
//! is a failed attempt), the whole attempt has one deadline, and only the
//! first 4 KiB of a response body are read.
//!
//! `https` targets are reached over TLS 1.2/1.3 (rustls): the certificate
//! must chain to a public Web PKI root or to an authority of
//! `webhook-ca-file`, and be valid for the URL's host name (or address
//! literal); the host name is what is checked, the connection still goes to
//! the one address resolved and checked above.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// How much of a response body is kept in the delivery log.
pub const EXCERPT_BYTES: usize = 4096;

/// A target URL, checked for shape (not yet for its address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or address literal (without IPv6 brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// The `Host` header value.
    pub authority: String,
    /// Whether the target is `https`.
    pub tls: bool,
}

/// Parses an endpoint URL: `http[s]://host[:port]/path`. Returns why not.
pub fn parse(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must start with https:// or http://".into()),
    };
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not contain credentials".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err("has no host".into());
    }
    Ok(Target {
        host,
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        path: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        authority: authority.as_str().to_owned(),
        tls,
    })
}

/// The TLS client settings for `https` targets: the Web PKI roots, plus the
/// authorities in the PEM file `ca_file` when given. Says why not.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let mut n = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("{} holds no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether an address is a public unicast address a webhook may reach
/// without being allowed explicitly.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local (fc00::/7, incl. fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (would reach IPv4 space)
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata (169.254.169.254)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

/// Whether `host` is on the allowlist (host names compared without case).
fn allowed(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// The address to connect to for `target`: resolved once and checked.
pub async fn resolve(target: &Target, allow: &[String]) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("{} has no address", target.host))?;
    if !allowed(&target.host, allow)
        && !allowed(&addr.ip().to_string(), allow)
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(format!(
            "{} resolves to {}, which is not a public address (allow the host with webhook-allow-hosts)",
            target.host,
            bad.ip()
        ));
    }
    Ok(addr)
}

/// A refusal known without resolving: an address literal or `localhost`
/// that is not public and not allowed. Used to refuse such URLs when an
/// endpoint is created or changed.
pub fn literal_refusal(target: &Target, allow: &[String]) -> Option<String> {
    if allowed(&target.host, allow) {
        return None;
    }
    let host = target.host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("is a loopback address".into());
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Some(format!("{ip} is not a public address")),
        _ => None,
    }
}

/// The outcome of one POST.
#[derive(Debug, Default)]
pub struct Answer {
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<u64>,
    /// The start of the response body.
    pub excerpt: Option<String>,
    /// Why there was no usable answer.
    pub error: Option<String>,
    /// Time from start to the answer (or the failure).
    pub latency: Duration,
}

/// Where and how a POST may go: the allowlist and the TLS settings.
#[derive(Clone, Copy)]
pub struct Reach<'a> {
    /// Hosts that may be private or loopback.
    pub allow: &'a [String],
    /// TLS client settings for `https` targets.
    pub tls: &'a Arc<rustls::ClientConfig>,
}

/// POSTs `body` with `headers` to `target`, all within `timeout`.
pub async fn post(
    target: &Target,
    reach: Reach<'_>,
    headers: &[(&str, String)],
    body: String,
    timeout: Duration,
) -> Answer {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, send(target, reach, headers, body)).await;
    let mut answer = match result {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Answer {
            error: Some(e),
            ..Answer::default()
        },
        Err(_) => Answer {
            error: Some(format!("no answer within {} s", timeout.as_secs())),
            ..Answer::default()
        },
    };
    answer.latency = started.elapsed();
    answer
}

async fn send(
    target: &Target,
    reach: Reach<'_>,
    headers: &[(&str, String)],
    body: String,
) -> Result<Answer, String> {
    let addr = resolve(target, reach.allow).await?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    if !target.tls {
        return exchange(stream, addr, target, headers, body).await;
    }
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| format!("{} is not a valid TLS server name", target.host))?;
    let stream = tokio_rustls::TlsConnector::from(reach.tls.clone())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {} ({addr}): {e}", target.host))?;
    exchange(stream, addr, target, headers, body).await
}

/// One HTTP/1.1 request and the start of its answer over `stream`.
async fn exchange<S>(
    stream: S,
    addr: SocketAddr,
    target: &Target,
    headers: &[(&str, String)],
    body: String,
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::post(target.path.as_str())
        .header(http::header::HOST, target.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "crm-webhooks/1");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request to {addr} failed: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = resp.into_body();
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = EXCERPT_BYTES - excerpt.len();
                        excerpt.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
        Ok(Answer {
            status: Some(status),
            retry_after,
            excerpt: Some(String::from_utf8_lossy(&excerpt).into_owned()),
            ..Answer::default()
        })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls_are_checked() {
        let t = parse("http://example.com:8081/hook?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 8081, "/hook?x=1")
        );
        assert!(parse("ftp://example.com/").is_err());
        let t = parse("https://example.com/hook").unwrap();
        assert_eq!((t.port, t.tls), (443, true));
        assert_eq!(parse("http://example.com/").unwrap().port, 80);
        assert!(parse("http://user:pw@example.com/").is_err());
        let local = parse("http://127.0.0.1:9/").unwrap();
        assert!(literal_refusal(&local, &[]).is_some());
        assert!(literal_refusal(&local, &["127.0.0.1".into()]).is_none());
        assert!(literal_refusal(&parse("http://localhost/").unwrap(), &[]).is_some());
        assert!(literal_refusal(&parse("http://[::1]/").unwrap(), &[]).is_some());
    }
}
