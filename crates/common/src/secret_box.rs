//! Sealing small secrets for storage in Postgres (camera credentials, `cameras.credentials`).
//!
//! AES-256-GCM with a random 96-bit nonce per message; the sealed form is `nonce ‖ ciphertext ‖
//! tag`. The API seals what a room manager types in; the ingest worker opens it right before
//! connecting. Both take the key from `CONFAB_CAMERA_KEY` (32 bytes, standard base64; `_FILE`
//! works too). Nothing here logs or displays a key or a plaintext.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{ConfigError, Source};

/// Length of the key, in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be used or a sealed value could not be opened. Says nothing about the
/// key or the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the key must be {KEY_LEN} bytes in standard base64 (e.g. `openssl rand -base64 32`)")]
    InvalidKey,
    /// Too short, tampered with, or sealed with another key.
    #[error("the sealed value cannot be opened with this key")]
    Open,
}

/// A key that seals and opens values.
#[derive(Clone)]
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from 32 bytes given in standard base64 (surrounding blanks ignored).
    pub fn from_base64_key(encoded: &str) -> Result<Self, Error> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| Error::InvalidKey)?;
        if bytes.len() != KEY_LEN {
            return Err(Error::InvalidKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| Error::InvalidKey)?;
        Ok(Self { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }

    /// `CONFAB_CAMERA_KEY`: the box, or `None` when the key is not set (cameras then cannot
    /// have credentials). A malformed key is a start-up error that does not show the value.
    pub fn from_source(src: &Source) -> Result<Option<Self>, ConfigError> {
        src.get("CONFAB_CAMERA_KEY")
            .map(|value| {
                Self::from_base64_key(value)
                    .map_err(|e| crate::config::invalid("CONFAB_CAMERA_KEY", "(hidden)", e.to_string()))
            })
            .transpose()
    }

    /// `plaintext` sealed under a fresh random nonce: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The system generator only fails when the OS has no randomness to give; sealing with a
        // predictable nonce would be worse than stopping.
        self.rng.fill(&mut nonce).expect("the system random number generator is available");
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut in_out)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        sealed
    }

    /// The plaintext of a value [`SecretBox::seal`] produced with this key; an error for
    /// anything else (too short, altered, another key).
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Error::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Open)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self.key.open_in_place(nonce, Aad::empty(), &mut in_out).map_err(|_| Error::Open)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=";
    const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn sealer() -> SecretBox {
        SecretBox::from_base64_key(KEY).unwrap()
    }

    #[test]
    fn what_is_sealed_opens_again_and_is_not_readable() {
        let plaintext = br#"{"username":"admin","password":"hunter2-camera"}"#;
        let sealed = sealer().seal(plaintext);
        assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + 16);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealer().open(&sealed).unwrap(), plaintext);
        assert_eq!(sealer().open(&sealer().seal(b"")).unwrap(), b"");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        assert_ne!(sealer().seal(b"same"), sealer().seal(b"same"));
    }

    #[test]
    fn any_altered_byte_is_detected() {
        let sealed = sealer().seal(b"password");
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert_eq!(sealer().open(&tampered), Err(Error::Open), "byte {index}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(sealer().open(&longer), Err(Error::Open));
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = sealer().seal(b"password");
        assert_eq!(SecretBox::from_base64_key(OTHER_KEY).unwrap().open(&sealed), Err(Error::Open));
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        for length in 0..(NONCE_LEN + 16) {
            assert_eq!(sealer().open(&vec![0u8; length]), Err(Error::Open), "{length} bytes");
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_standard_base64() {
        assert!(SecretBox::from_base64_key(&format!(" {KEY}\n")).is_ok());
        for bad in ["", "not base64!", "AAAA", &STANDARD.encode([0u8; 31]), &STANDARD.encode([0u8; 33])] {
            assert_eq!(SecretBox::from_base64_key(bad).unwrap_err(), Error::InvalidKey, "{bad:?}");
        }
    }

    #[test]
    fn the_debug_form_and_config_errors_hide_the_key() {
        assert_eq!(format!("{:?}", sealer()), "SecretBox(..)");
        let src = Source::from_vars([("CONFAB_CAMERA_KEY".to_owned(), "c2VjcmV0LWJ1dC1zaG9ydA==".to_owned())]);
        let err = SecretBox::from_source(&src.unwrap()).unwrap_err().to_string();
        assert!(err.contains("CONFAB_CAMERA_KEY") && !err.contains("c2VjcmV0"), "{err}");
        assert!(SecretBox::from_source(&Source::default()).unwrap().is_none());
    }
}
