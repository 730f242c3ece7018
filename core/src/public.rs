//! Public endpoints: URLs that browsers on other sites post to without
//! credentials (web forms), built once here for every module.
//!
//! A module offers a [`PublicEndpoint`] (`Module::public_endpoints`); the
//! gateway mounts `POST` and `OPTIONS` on `/{path}/{key}` for each and hands
//! every request to [`Public::post`] / [`Public::preflight`], which apply
//! the rules in this order, so the cheap refusals come first and nothing
//! about stored records leaks:
//!
//! 1. the client address ([`client_addr`]: the peer, or with
//!    `trusted-proxies` the last untrusted hop of `X-Forwarded-For`) is
//!    rate limited ([`RateLimiter`], `429` + `Retry-After`), before any
//!    lookup, so scanning for keys costs the same as posting;
//! 2. the key is looked up: an unknown or inactive one is a plain `404`;
//! 3. the form itself is rate limited (all clients together);
//! 4. the `Origin` (or, without one, the `Referer`'s origin) must be one
//!    of the endpoint's allowed origins (`403` otherwise); a preflight is
//!    answered for allowed origins only, never with credentials;
//! 5. the body (at most `public-max-body-bytes`, `413` over it) is parsed
//!    from `application/x-www-form-urlencoded` or a flat JSON object into
//!    a string map ([`parse_body`]);
//! 6. a filled honeypot field is answered as a success and logged, and
//!    nothing is written;
//! 7. the endpoint's `submit` runs; its answer is a redirect (`303`) or
//!    `{"ok": true}`, or `422` naming the bad field names only.
//!
//! Rate limits are fixed windows counted in this process's memory: with
//! several replicas behind a load balancer each counts its own share, so
//! the effective limit is the setting times the replicas.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{Error, Result};

/// A submission's fields: posted name to value (the first value of a
/// repeated name).
pub type Fields = BTreeMap<String, String>;

/// Most fields one submission may have.
pub const MAX_FIELDS: usize = 100;

/// Settings of the public endpoints (`public-*`, `trusted-proxies`).
#[derive(Clone, Debug)]
pub struct PublicSettings {
    /// Posts one client address may make per window, over every endpoint.
    pub per_address: u32,
    /// Posts one form may receive per window, from every client.
    pub per_form: u32,
    /// The rate limit window.
    pub window: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// An address range (`10.0.0.0/8`, `::1/128`; a bare address is one
/// address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/bits`.
    pub fn parse(s: &str) -> std::result::Result<Cidr, String> {
        let (a, b) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or address/bits"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match b {
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, bits })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn prefix(a: u128, b: u128, bits: u8, width: u8) -> bool {
            if bits == 0 {
                return true;
            }
            let shift = width - bits;
            (a >> shift) == (b >> shift)
        }
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                prefix(u32::from(n) as u128, u32::from(i) as u128, self.bits, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix(u128::from(n), u128::from(i), self.bits, 128),
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then `X-Forwarded-For` is read from the right, skipping trusted
/// proxies, and the first other address is the client (an entry that is
/// not an address stops the walk at the last trusted hop). A client cannot
/// choose its address by sending the header itself, since only hops
/// appended by trusted proxies are believed.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
            break;
        };
        client = ip;
        if !trusted_ip(ip) {
            break;
        }
    }
    client
}

/// The rate limit key of an address: IPv6 clients usually hold a whole
/// /64, so they are counted per /64.
fn address_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Fixed-window counters per key, in memory. Keys whose window has passed
/// are dropped once the map grows, so memory follows the number of keys
/// seen within one window.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// At most `limit` hits per key per `window`.
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit for `key` at `now`; over the limit, how long until the
    /// window ends (at least a second).
    pub fn hit(&self, key: &str, now: Instant) -> std::result::Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= 4096 {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = (entry.0 + self.window).saturating_duration_since(now);
            return Err(left.max(Duration::from_secs(1)));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The origin of a request: its `Origin` header, or the origin of its
/// `Referer` when it has none; lower case, without a trailing slash.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(o.trim().trim_end_matches('/').to_ascii_lowercase());
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}

/// Checks an origin as an admin enters it: `scheme://host[:port]`.
pub fn normalize_origin(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, host) = s.split_once("://")?;
    let ok = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(s)
}

/// Whether a request from `origin` may use an endpoint allowing
/// `allowed`: an empty list allows every origin (and requests without
/// one); otherwise the origin must be listed.
pub fn origin_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    origin.is_some_and(|o| allowed.iter().any(|a| a == o))
}

/// Why a body could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyProblem {
    /// Neither form-urlencoded nor JSON (`415`).
    Unsupported,
    /// Not parseable, not a flat object, or too many fields (`400`).
    Malformed(String),
}

/// A body as a flat string map: `application/x-www-form-urlencoded`, or a
/// JSON object whose values are strings, numbers, booleans or null (null
/// fields are left out).
pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
) -> std::result::Result<Fields, BodyProblem> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Fields::new();
    match media.as_str() {
        "application/x-www-form-urlencoded" => {
            for (k, v) in form_urlencoded::parse(body) {
                if out.len() >= MAX_FIELDS && !out.contains_key(k.as_ref()) {
                    return Err(BodyProblem::Malformed(format!(
                        "more than {MAX_FIELDS} fields"
                    )));
                }
                out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
        }
        "application/json" => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|_| BodyProblem::Malformed("the body is not JSON".into()))?;
            let Value::Object(map) = v else {
                return Err(BodyProblem::Malformed(
                    "the body is not a JSON object".into(),
                ));
            };
            if map.len() > MAX_FIELDS {
                return Err(BodyProblem::Malformed(format!(
                    "more than {MAX_FIELDS} fields"
                )));
            }
            for (k, v) in map {
                let v = match v {
                    Value::Null => continue,
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(BodyProblem::Malformed(format!(
                            "field {k:?} is not a string, number or boolean"
                        )));
                    }
                };
                out.insert(k, v);
            }
        }
        _ => return Err(BodyProblem::Unsupported),
    }
    Ok(out)
}

/// A new public key: 144 random bits, URL-safe (24 characters), so keys
/// cannot be guessed or enumerated.
pub fn random_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the platform needs to know about a live public key before it
/// reads the body.
#[derive(Clone, Debug)]
pub struct Gate {
    /// The record behind the key (`lfm_…`): the audit actor of its writes
    /// and the key of its rate limit.
    pub id: String,
    /// Origins whose pages may post (empty: any).
    pub allowed_origins: Vec<String>,
    /// A field people leave empty and bots fill in.
    pub honeypot: Option<String>,
    /// Where a browser is sent after a submission (`303`); none: JSON.
    pub redirect_url: Option<String>,
}

/// One accepted body, for [`PublicEndpoint::submit`].
pub struct Submission<'a> {
    /// The key's gate, as looked up.
    pub gate: &'a Gate,
    /// The posted fields.
    pub fields: Fields,
    /// The client's address (for logs; never stored).
    pub client: IpAddr,
}

/// What a submission came to.
#[derive(Debug)]
pub enum Outcome {
    /// Taken (or recognised as a repeat): the same answer either way.
    Accepted,
    /// These posted field names are missing or invalid.
    Invalid(Vec<String>),
}

/// An endpoint a module exposes to the internet.
pub trait PublicEndpoint: Send + Sync {
    /// Its first path segment (`forms` for `/forms/{key}`).
    fn path(&self) -> &'static str;

    /// The live record behind `key`; `None` for an unknown or inactive
    /// key (the caller answers a plain `404` either way).
    fn lookup<'a>(&'a self, app: &'a App, key: &'a str) -> BoxFuture<'a, Result<Option<Gate>>>;

    /// Takes a submission. It must answer the same whether or not the
    /// data matched stored records.
    fn submit<'a>(&'a self, app: &'a App, sub: Submission<'a>) -> BoxFuture<'a, Result<Outcome>>;
}

/// Why the gateway could not read a body.
#[derive(Debug)]
pub enum BodyRead {
    /// Over `public-max-body-bytes`.
    TooLarge,
    /// Sent too slowly.
    TooSlow,
    /// The connection broke.
    Broken,
}

/// The public endpoints' shared state: settings and rate limiters.
pub struct Public {
    settings: PublicSettings,
    per_address: RateLimiter,
    per_form: RateLimiter,
}

/// An answer of a public endpoint.
pub type Reply = Response<Vec<u8>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut r = Response::new(body.to_string().into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn failure(status: StatusCode, message: &str) -> Reply {
    reply(status, json!({"ok": false, "error": message}))
}

fn not_found() -> Reply {
    let mut r = Response::new(b"not found".to_vec());
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn too_many(wait: Duration) -> Reply {
    let mut r = failure(
        StatusCode::TOO_MANY_REQUESTS,
        "too many submissions; retry later",
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The CORS headers of an answer to an allowed origin: that origin only,
/// never credentials.
fn allow_origin(r: &mut Reply, origin: Option<&str>) {
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

impl Public {
    /// The state for `settings`.
    pub fn new(settings: PublicSettings) -> Public {
        Public {
            per_address: RateLimiter::new(settings.per_address, settings.window),
            per_form: RateLimiter::new(settings.per_form, settings.window),
            settings,
        }
    }

    /// The largest body [`Public::post`] accepts.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// Steps 1 to 4 of the module documentation: the gate of an allowed
    /// request, or the refusal to send.
    async fn admit(
        &self,
        app: &App,
        ep: &dyn PublicEndpoint,
        key: &str,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> std::result::Result<(Gate, Option<String>), Reply> {
        let now = Instant::now();
        if let Err(wait) = self.per_address.hit(&address_key(client), now) {
            tracing::info!(%client, endpoint = ep.path(), "public endpoint: client over its rate limit");
            return Err(too_many(wait));
        }
        let plausible = !key.is_empty()
            && key.len() <= 100
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plausible {
            return Err(not_found());
        }
        let gate = match ep.lookup(app, key).await {
            Ok(Some(g)) => g,
            Ok(None) => return Err(not_found()),
            Err(e) => return Err(internal(&e)),
        };
        if let Err(wait) = self
            .per_form
            .hit(&format!("{}:{}", ep.path(), gate.id), now)
        {
            tracing::info!(form = %gate.id, "public endpoint: form over its rate limit");
            return Err(too_many(wait));
        }
        let origin = request_origin(headers);
        if !origin_allowed(origin.as_deref(), &gate.allowed_origins) {
            tracing::info!(form = %gate.id, origin = ?origin, %client, "public endpoint: origin refused");
            return Err(failure(StatusCode::FORBIDDEN, "origin not allowed"));
        }
        Ok((gate, origin))
    }

    /// Answers a CORS preflight: `204` with the origin allowed (no
    /// credentials) for an allowed origin, `403` otherwise.
    pub async fn preflight(
        &self,
        app: &App,
        ep: &dyn PublicEndpoint,
        key: &str,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Reply {
        let (_, origin) = match self.admit(app, ep, key, headers, client).await {
            Ok(g) => g,
            Err(r) => return r,
        };
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::NO_CONTENT;
        allow_origin(&mut r, origin.as_deref());
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    }

    /// Handles a `POST /{path}/{key}`; `body` reads the body within
    /// [`Public::max_body_bytes`] and is only awaited once the request
    /// passed the rate limits, the key and the origin check.
    pub async fn post(
        &self,
        app: &App,
        ep: &dyn PublicEndpoint,
        key: &str,
        headers: &HeaderMap,
        client: IpAddr,
        body: BoxFuture<'_, std::result::Result<Vec<u8>, BodyRead>>,
    ) -> Reply {
        let (gate, origin) = match self.admit(app, ep, key, headers, client).await {
            Ok(g) => g,
            Err(r) => return r,
        };
        let mut r = self.take(app, ep, &gate, headers, client, body).await;
        allow_origin(&mut r, origin.as_deref());
        r
    }

    async fn take(
        &self,
        app: &App,
        ep: &dyn PublicEndpoint,
        gate: &Gate,
        headers: &HeaderMap,
        client: IpAddr,
        body: BoxFuture<'_, std::result::Result<Vec<u8>, BodyRead>>,
    ) -> Reply {
        let bytes = match body.await {
            Ok(b) => b,
            Err(BodyRead::TooLarge) => {
                let mut r = failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the body is over the limit of {} bytes",
                        self.settings.max_body_bytes
                    ),
                );
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            Err(BodyRead::TooSlow) => {
                return failure(StatusCode::REQUEST_TIMEOUT, "the body arrives too slowly");
            }
            Err(BodyRead::Broken) => {
                return failure(StatusCode::BAD_REQUEST, "the body could not be read");
            }
        };
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let fields = match parse_body(content_type, &bytes) {
            Ok(f) => f,
            Err(BodyProblem::Unsupported) => {
                return failure(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send application/x-www-form-urlencoded or application/json",
                );
            }
            Err(BodyProblem::Malformed(why)) => return failure(StatusCode::BAD_REQUEST, &why),
        };
        if let Some(h) = &gate.honeypot
            && fields.get(h).is_some_and(|v| !v.trim().is_empty())
        {
            tracing::warn!(form = %gate.id, %client, honeypot = %h, "public endpoint: honeypot filled; submission dropped");
            return accepted(gate);
        }
        let sub = Submission {
            gate,
            fields,
            client,
        };
        match ep.submit(app, sub).await {
            Ok(Outcome::Accepted) => accepted(gate),
            Ok(Outcome::Invalid(mut fields)) => {
                fields.sort();
                fields.dedup();
                reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"ok": false, "fields": fields}),
                )
            }
            Err(Error::Unavailable(why)) => {
                tracing::warn!(form = %gate.id, error = %why, "public endpoint: unavailable");
                let mut r = failure(StatusCode::SERVICE_UNAVAILABLE, "try again later");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            Err(e) => internal(&e),
        }
    }
}

fn accepted(gate: &Gate) -> Reply {
    match gate
        .redirect_url
        .as_deref()
        .and_then(|u| HeaderValue::from_str(u).ok())
    {
        Some(to) => {
            let mut r = Response::new(Vec::new());
            *r.status_mut() = StatusCode::SEE_OTHER;
            r.headers_mut().insert(header::LOCATION, to);
            r
        }
        None => reply(StatusCode::OK, json!({"ok": true})),
    }
}

fn internal(e: &Error) -> Reply {
    tracing::error!(error = ?e, "public endpoint failed");
    failure(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_hits_and_says_when_it_ends() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let t = Instant::now();
        assert!(l.hit("a", t).is_ok());
        assert!(l.hit("a", t).is_ok());
        let wait = l.hit("a", t + Duration::from_secs(20)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(l.hit("b", t).is_ok(), "keys are counted apart");
        assert!(
            l.hit("a", t + Duration::from_secs(60)).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.1.1.1".parse().unwrap(),
        );
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            client_addr(peer, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_addr(outsider, &h, &trusted), outsider);
        assert_eq!(client_addr(peer, &HeaderMap::new(), &trusted), peer);
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "1.2.3.4, junk".parse().unwrap());
        assert_eq!(client_addr(peer, &bad, &trusted), peer);
    }

    #[test]
    fn bodies_become_flat_maps() {
        let f = parse_body(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"email=a%40b.example&name=Ada+L&name=second",
        )
        .unwrap();
        assert_eq!(f["email"], "a@b.example");
        assert_eq!(f["name"], "Ada L");
        let j = parse_body(
            Some("application/json"),
            br#"{"n": 3, "ok": true, "x": null, "s": "v"}"#,
        )
        .unwrap();
        assert_eq!(j.len(), 3);
        assert_eq!(j["n"], "3");
        assert!(matches!(
            parse_body(Some("application/json"), br#"{"a": {"b": 1}}"#),
            Err(BodyProblem::Malformed(_))
        ));
        assert_eq!(
            parse_body(Some("text/plain"), b"x"),
            Err(BodyProblem::Unsupported)
        );
    }

    #[test]
    fn origins_are_compared_exactly() {
        let allowed = vec!["https://www.example.com".to_owned()];
        assert!(origin_allowed(Some("https://www.example.com"), &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), &allowed));
        assert!(!origin_allowed(None, &allowed));
        assert!(origin_allowed(None, &[]));
        let mut h = HeaderMap::new();
        h.insert(
            header::REFERER,
            "https://WWW.example.com/contact?x=1".parse().unwrap(),
        );
        assert_eq!(
            request_origin(&h).as_deref(),
            Some("https://www.example.com")
        );
        assert_eq!(
            normalize_origin("https://a.example/").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(normalize_origin("a.example"), None);
    }
}
