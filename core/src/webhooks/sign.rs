//! Endpoint secrets and Standard Webhooks (v1) signatures.
//!
//! A secret is `whsec_` + base64 of 32 random bytes; the bytes are the
//! HMAC-SHA256 key. A message is signed over `{webhook-id}.{webhook-timestamp}.{body}`
//! and the header carries `v1,<base64 signature>`, one per secret in force,
//! separated by spaces (during a rotation: the new secret's and the old
//! one's, so receivers may switch whenever they like).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random secret.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The signing key of a secret (the base64 after the prefix).
fn key(secret: &str) -> Option<ring::hmac::Key> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let bytes = STANDARD.decode(b64).ok()?;
    Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

/// The `webhook-signature` header value for a message under every secret
/// in `secrets` (space-separated `v1,…` entries). Secrets that are not
/// valid base64 are skipped (they cannot be created through the API).
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &str) -> String {
    let content = format!("{id}.{timestamp}.{body}");
    secrets
        .iter()
        .filter_map(|s| key(s))
        .map(|k| {
            let tag = ring::hmac::sign(&k, content.as_bytes());
            format!("v1,{}", STANDARD.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// implementations (secret, id, timestamp, body and signature).
    #[test]
    fn matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(SECRET_PREFIX) && a != b);
        let both = signature(&[&a, &b], "msg_1", 1, "{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[&a], "msg_1", 1, "{}"));
        assert_eq!(parts[1], signature(&[&b], "msg_1", 1, "{}"));
    }
}
