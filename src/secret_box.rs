//! Stored credentials sealed with AES-256-GCM (RustCrypto's `aes-gcm`).
//!
//! A sealed value reads `v1:<key id>:<base64(nonce || ciphertext || tag)>`. The key id
//! says which configured key opens it, so keys rotate without a flag day: add a key, make
//! it active, reseal (`consultantpro reseal-secrets`), remove the old key. Each value is
//! bound to where it is stored (the associated data, e.g. `sms_settings:<firm id>`), so a
//! sealed token copied into another firm's row does not open there.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::config::SecretSettings;

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretBoxError {
    #[error("secrets.keys is malformed: {0}")]
    BadConfiguration(String),
    #[error("no configured key `{0}` opens this value (was it removed before resealing?)")]
    UnknownKey(String),
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with its key (tampered, or stored elsewhere)")]
    Tampered,
}

pub struct SecretBox {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox").field("active", &self.active).field("keys", &self.keys.len()).finish()
    }
}

impl SecretBox {
    pub fn from_settings(settings: &SecretSettings) -> Result<Self, SecretBoxError> {
        let mut keys = HashMap::new();
        for entry in settings.keys.expose_secret().split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| SecretBoxError::BadConfiguration("each entry is id:base64key".into()))?;
            let id = id.trim();
            if id.is_empty() || id.contains(|c: char| c == ':' || c.is_whitespace()) {
                return Err(SecretBoxError::BadConfiguration(format!("key id `{id}` must be a word without `:`")));
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| SecretBoxError::BadConfiguration(format!("key `{id}` is not base64")))?;
            if bytes.len() != 32 {
                return Err(SecretBoxError::BadConfiguration(format!(
                    "key `{id}` is {} bytes; AES-256 needs 32",
                    bytes.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| SecretBoxError::BadConfiguration(format!("key `{id}` is not an AES-256 key")))?;
            keys.insert(id.to_owned(), cipher);
        }
        if !keys.contains_key(&settings.active_key) {
            return Err(SecretBoxError::BadConfiguration(format!(
                "secrets.active_key `{}` is not among secrets.keys",
                settings.active_key
            )));
        }
        Ok(Self { active: settings.active_key.clone(), keys })
    }

    /// Seals `plain` for the place named by `context`, under the active key.
    pub fn seal(&self, plain: &str, context: &str) -> Result<String, SecretBoxError> {
        let cipher = self.keys.get(&self.active).ok_or_else(|| SecretBoxError::UnknownKey(self.active.clone()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| SecretBoxError::Malformed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{}:{}", self.active, STANDARD.encode(out)))
    }

    /// Opens a value sealed for `context` by any configured key.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, SecretBoxError> {
        let (key_id, bytes) = parse(sealed)?;
        let cipher = self.keys.get(key_id).ok_or_else(|| SecretBoxError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SecretBoxError::Malformed);
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretBoxError::Malformed)?;
        let plain = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| SecretBoxError::Tampered)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| SecretBoxError::Malformed)
    }

    /// Opens a stored secret. A value stored before it was sealed (no `v1:` prefix: TOTP
    /// secrets are base32 and webhook secrets `whsec_…`, neither holds a `:`) reads as it
    /// is until `consultantpro migrate` seals it.
    pub fn open_stored(&self, stored: &str, context: &str) -> Result<SecretString, SecretBoxError> {
        if is_sealed(stored) { self.open(stored, context) } else { Ok(SecretString::from(stored.to_owned())) }
    }

    /// The value to store instead of `stored` so it is sealed under the active key, or
    /// `None` when it already is.
    pub fn refreshed(&self, stored: &str, context: &str) -> Result<Option<String>, SecretBoxError> {
        if is_sealed(stored) && !self.needs_reseal(stored) {
            return Ok(None);
        }
        let plain = self.open_stored(stored, context)?;
        self.seal(plain.expose_secret(), context).map(Some)
    }

    /// For a sealing pass over many rows: as [`SecretBox::refreshed`], but a value no
    /// configured key opens is left as it is and logged, so one row sealed by a key
    /// removed too soon does not stop the pass (nor a migration) for every other row.
    pub fn refreshed_or_skipped(&self, stored: &str, context: &str) -> Option<String> {
        match self.refreshed(stored, context) {
            Ok(refreshed) => refreshed,
            Err(err) => {
                tracing::warn!(error = %err, context, "a stored secret does not open; left as it is");
                None
            }
        }
    }

    /// Whether a value was sealed by another key than the active one.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        parse(sealed).map(|(key, _)| key != self.active).unwrap_or(false)
    }
}

fn is_sealed(stored: &str) -> bool {
    stored.starts_with("v1:")
}

fn parse(sealed: &str) -> Result<(&str, Vec<u8>), SecretBoxError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some(VERSION), Some(key), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SecretBoxError::Malformed);
    };
    Ok((key, STANDARD.decode(body).map_err(|_| SecretBoxError::Malformed)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(active: &str, keys: &str) -> SecretSettings {
        SecretSettings { active_key: active.into(), keys: SecretString::from(keys.to_owned()) }
    }

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn values_stored_before_sealing_read_as_they_are_until_refreshed() {
        let secrets = SecretBox::from_settings(&settings("a", &format!("a:{},b:{}", key(1), key(2)))).expect("config");
        let legacy = "JBSWY3DPEHPK3PXP";
        assert_eq!(secrets.open_stored(legacy, "users.mfa:1").expect("plain").expose_secret(), legacy);
        let sealed = secrets.refreshed(legacy, "users.mfa:1").expect("seal").expect("was plain");
        assert!(sealed.starts_with("v1:a:") && !sealed.contains(legacy));
        assert_eq!(secrets.open_stored(&sealed, "users.mfa:1").expect("open").expose_secret(), legacy);
        assert_eq!(secrets.refreshed(&sealed, "users.mfa:1").expect("current"), None, "already under the active key");
        let rotated = SecretBox::from_settings(&settings("b", &format!("a:{},b:{}", key(1), key(2)))).expect("config");
        let resealed = rotated.refreshed(&sealed, "users.mfa:1").expect("reseal").expect("old key");
        assert!(resealed.starts_with("v1:b:"));
        assert_eq!(rotated.open_stored(&resealed, "users.mfa:2").expect_err("moved"), SecretBoxError::Tampered);
        let only_b = SecretBox::from_settings(&settings("b", &format!("b:{}", key(2)))).expect("config");
        assert_eq!(only_b.refreshed_or_skipped(&sealed, "users.mfa:1"), None, "no key opens it: left alone");
    }

    #[test]
    fn seals_open_only_in_their_place_and_survive_rotation() {
        let old = SecretBox::from_settings(&settings("a", &format!("a:{}", key(1)))).expect("config");
        let sealed = old.seal("auth-token", "sms_settings:firm-1").expect("seal");
        assert!(!sealed.contains("auth-token"));
        assert_eq!(old.open(&sealed, "sms_settings:firm-1").expect("open").expose_secret(), "auth-token");
        assert_eq!(old.open(&sealed, "sms_settings:firm-2").expect_err("moved"), SecretBoxError::Tampered);
        // Two seals of one value differ (fresh nonce each time).
        assert_ne!(sealed, old.seal("auth-token", "sms_settings:firm-1").expect("seal"));

        let rotated = SecretBox::from_settings(&settings("b", &format!("a:{},b:{}", key(1), key(2)))).expect("config");
        assert!(rotated.needs_reseal(&sealed));
        assert_eq!(rotated.open(&sealed, "sms_settings:firm-1").expect("old key opens").expose_secret(), "auth-token");
        let resealed = rotated.seal("auth-token", "sms_settings:firm-1").expect("seal");
        assert!(!rotated.needs_reseal(&resealed));
        let without_old = SecretBox::from_settings(&settings("b", &format!("b:{}", key(2)))).expect("config");
        assert_eq!(without_old.open(&sealed, "x").expect_err("removed key"), SecretBoxError::UnknownKey("a".into()));
        assert_eq!(
            without_old.open(&resealed, "sms_settings:firm-1").expect("new key opens").expose_secret(),
            "auth-token"
        );
    }

    #[test]
    fn tampering_and_bad_configuration_are_refused() {
        let secret_box = SecretBox::from_settings(&settings("a", &format!("a:{}", key(7)))).expect("config");
        let sealed = secret_box.seal("token", "ctx").expect("seal");
        let mut bytes = parse(&sealed).expect("parses").1;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:a:{}", STANDARD.encode(bytes));
        assert_eq!(secret_box.open(&tampered, "ctx").expect_err("tampered"), SecretBoxError::Tampered);
        for garbage in ["", "v1:a", "v2:a:AAAA", "v1:a:not base64!", "v1:a:AAAA"] {
            assert!(secret_box.open(garbage, "ctx").is_err(), "{garbage}");
        }
        for keys in ["a", "a:short", &format!("a:{}", STANDARD.encode([0u8; 16])), &format!("b:{}", key(1))] {
            assert!(SecretBox::from_settings(&settings("a", keys)).is_err(), "{keys}");
        }
    }
}
