//! Webhook secrets and signatures, as the Standard Webhooks specification has them
//! (<https://www.standardwebhooks.com>), so receivers can verify with an existing library: the
//! secret is `whsec_` + base64 of the key; each request carries `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

const PREFIX: &str = "whsec_";
/// Key sizes accepted from operators; generated keys are 32 bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing key, parsed from its `whsec_` form.
pub struct SigningSecret(hmac::Key);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret is \"whsec_\" followed by base64 of 24 to 64 random bytes")]
pub struct InvalidSecret;

impl SigningSecret {
    pub fn parse(secret: &str) -> Result<Self, InvalidSecret> {
        let encoded = secret.strip_prefix(PREFIX).ok_or(InvalidSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| InvalidSecret)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(InvalidSecret);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }

    /// The `webhook-signature` header value for one request.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(format!("{message_id}.{timestamp}.").as_bytes());
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

/// A new random secret in `whsec_` form.
pub fn generate() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source is available");
    format!("{PREFIX}{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_example() {
        // The example from the specification's reference libraries (svix/webhooks test vectors).
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_parse_and_malformed_ones_do_not() {
        assert!(SigningSecret::parse(&generate()).is_ok());
        for bad in
            ["", "whsec_", "secret", "whsec_!!!!", "whsec_c2hvcnQ=", &format!("whsec_{}", STANDARD.encode([0u8; 65]))]
        {
            assert_eq!(SigningSecret::parse(bad).err(), Some(InvalidSecret), "{bad:?}");
        }
    }
}
