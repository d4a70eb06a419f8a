//! Encryption at rest of secret values in the embedded store.
//!
//! A [`Keyring`] holds one or more 256-bit store keys, each with an id; the last is the
//! current one. A secret's row is sealed with AES-256-GCM (aws-lc-rs) under the current key,
//! a random 96-bit nonce and the row's `(owner, key)` as associated data, so a sealed row
//! copied to another slot does not open. A sealed row is
//! `0xE5 · id length · id · nonce · ciphertext+tag`; a clear row is JSON and starts with `{`,
//! so both can be told apart while a store is being resealed.
//!
//! Rotation adds a key, reseals every secret row under it, then drops the old keys
//! (`local_server::rotate_store_key`, `tagcfg rotate-store-key`).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use tagged_routing::{Error, Result};

const SEALED: u8 = 0xE5;
const KEY_BYTES: usize = 32;

struct StoreKey {
    id: String,
    raw: [u8; KEY_BYTES],
    key: LessSafeKey,
}

/// The store keys, oldest first. Its `Debug` shows ids only, never key material.
pub struct Keyring {
    keys: Vec<StoreKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

fn bad_keyring(problem: impl std::fmt::Display) -> Error {
    Error::Backend(format!("store keyring: {problem}"))
}

fn store_key(id: String, raw: [u8; KEY_BYTES]) -> Result<StoreKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| bad_keyring("a key was refused"))?;
    Ok(StoreKey {
        id,
        raw,
        key: LessSafeKey::new(unbound),
    })
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| bad_keyring(format!("no randomness: {e}")))?;
    Ok(bytes)
}

impl Keyring {
    /// A keyring with one new random key, `k1`.
    pub fn generate() -> Result<Self> {
        Ok(Keyring {
            keys: vec![store_key("k1".into(), random()?)?],
        })
    }

    /// Reads the text form: one `<id> <64 hex digits>` line per key, oldest first.
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (id, hex) = line
                .trim()
                .split_once(' ')
                .ok_or_else(|| bad_keyring(format!("line {} is not '<id> <key>'", n + 1)))?;
            if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad_keyring(format!(
                    "line {}: the id must be 1-32 letters or digits",
                    n + 1
                )));
            }
            let mut raw = [0u8; KEY_BYTES];
            let hex = hex.trim().as_bytes();
            if hex.len() != KEY_BYTES * 2 {
                return Err(bad_keyring(format!("line {}: a key is 64 hex digits", n + 1)));
            }
            for (i, pair) in hex.chunks(2).enumerate() {
                let digits = std::str::from_utf8(pair).ok();
                raw[i] = digits
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .ok_or_else(|| bad_keyring(format!("line {}: not hex", n + 1)))?;
            }
            keys.push(store_key(id.to_owned(), raw)?);
        }
        if keys.is_empty() {
            return Err(bad_keyring("no key"));
        }
        Ok(Keyring { keys })
    }

    /// The text form [`Keyring::parse`] reads. It is the key material: keep it owner-only.
    pub fn to_text(&self) -> String {
        self.keys
            .iter()
            .map(|k| {
                let hex: String = k.raw.iter().map(|b| format!("{b:02x}")).collect();
                format!("{} {hex}\n", k.id)
            })
            .collect()
    }

    /// This keyring plus a new random key, which becomes the current one.
    pub fn with_new_key(&self) -> Result<Self> {
        let next = self
            .keys
            .iter()
            .filter_map(|k| k.id.strip_prefix('k')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let mut keys: Vec<StoreKey> = self
            .keys
            .iter()
            .map(|k| store_key(k.id.clone(), k.raw))
            .collect::<Result<_>>()?;
        keys.push(store_key(format!("k{next}"), random()?)?);
        Ok(Keyring { keys })
    }

    /// Only the current key (after every row was resealed under it).
    pub fn current_only(&self) -> Result<Self> {
        let current = self.current();
        Ok(Keyring {
            keys: vec![store_key(current.id.clone(), current.raw)?],
        })
    }

    fn current(&self) -> &StoreKey {
        // `parse` and `generate` never make an empty keyring.
        &self.keys[self.keys.len() - 1]
    }

    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    /// Seals `plain` under the current key, bound to `context`.
    pub(crate) fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let current = self.current();
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut sealed = Vec::with_capacity(2 + current.id.len() + NONCE_LEN + plain.len() + 16);
        sealed.push(SEALED);
        sealed.push(current.id.len() as u8);
        sealed.extend_from_slice(current.id.as_bytes());
        sealed.extend_from_slice(&nonce_bytes);
        let mut body = plain.to_vec();
        current
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context), &mut body)
            .map_err(|_| bad_keyring("sealing failed"))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Opens a row [`Keyring::seal`] made for the same `context`.
    pub(crate) fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let corrupt = || Error::Backend("embedded store holds a sealed value that does not open".into());
        let id = sealed_with(sealed).ok_or_else(corrupt)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            Error::Backend(format!(
                "a secret is sealed with store key '{id}', which the keyring does not hold"
            ))
        })?;
        let rest = &sealed[2 + id.len()..];
        if rest.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut body = body.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| corrupt())?;
        Ok(plain.to_vec())
    }
}

/// The id of the key a sealed row was sealed with; `None` for a clear row.
pub(crate) fn sealed_with(row: &[u8]) -> Option<&str> {
    let (&marker, rest) = row.split_first()?;
    if marker != SEALED {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    std::str::from_utf8(rest.get(..usize::from(len))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_context() {
        let ring = Keyring::generate().unwrap();
        let sealed = ring.seal(b"acme\0secret_config_a", b"{\"v\":\"sk_live\"}").unwrap();
        assert!(
            !sealed.windows(7).any(|w| w == b"sk_live"),
            "plaintext in the sealed row"
        );
        assert_eq!(sealed_with(&sealed), Some("k1"));
        assert_eq!(
            ring.open(b"acme\0secret_config_a", &sealed).unwrap(),
            b"{\"v\":\"sk_live\"}"
        );
        // Moved to another row, tampered with, or under another key: refused.
        assert!(ring.open(b"globex\0secret_config_a", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(ring.open(b"acme\0secret_config_a", &tampered).is_err());
        let other = Keyring::generate().unwrap();
        assert!(other.open(b"acme\0secret_config_a", &sealed).is_err());
        assert_eq!(sealed_with(b"{\"key\":1}"), None);
    }

    #[test]
    fn the_text_form_round_trips_and_rotation_keeps_old_keys_until_dropped() {
        let ring = Keyring::generate().unwrap();
        let sealed = ring.seal(b"c", b"x").unwrap();
        let rotated = Keyring::parse(&ring.with_new_key().unwrap().to_text()).unwrap();
        assert_eq!(rotated.current_id(), "k2");
        assert_eq!(rotated.open(b"c", &sealed).unwrap(), b"x", "old rows still open");
        let resealed = rotated.seal(b"c", b"x").unwrap();
        let only = rotated.current_only().unwrap();
        assert_eq!(only.open(b"c", &resealed).unwrap(), b"x");
        assert!(only.open(b"c", &sealed).is_err(), "the dropped key is gone");
        assert!(
            !format!("{only:?}").contains(&only.to_text()[3..20]),
            "Debug shows key material"
        );
        for bad in ["", "k1", "k1 zz", "k-1 00", &format!("k1 {}", "0".repeat(63))] {
            assert!(Keyring::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
