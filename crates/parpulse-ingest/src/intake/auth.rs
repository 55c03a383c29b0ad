//! Per-agency bearer tokens for the HTTP intake.
//!
//! Tokens are configured as SHA-256 digests (never in clear), in a TOML file:
//!
//! ```toml
//! [[token]]
//! agency = "SNV"          # the unit this token speaks for
//! sha256 = "9f86d0..."    # hex digest of the token
//! ```
//!
//! A token admits events of its own unit and of the units below it in the
//! registry (a province-level token, `agency = "HY"`, admits every unit).
//! Presented tokens are hashed and compared with every digest in constant time.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use parpulse_core::AgencyRegistry;

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("token file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("token for {agency}: sha256 must be 64 hex characters")]
    BadDigest { agency: String },
    #[error("token for {0}: neither the province nor a unit of the registry")]
    UnknownAgency(String),
}

#[derive(Deserialize)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
struct TokenEntry {
    agency: String,
    sha256: String,
}

struct Grant {
    agency: String,
    digest: [u8; 32],
}

/// The configured tokens.
pub struct TokenStore {
    grants: Vec<Grant>,
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenStore {
    pub fn from_toml(text: &str, registry: &AgencyRegistry) -> Result<Self, TokenFileError> {
        let file: TokenFile = toml::from_str(text)?;
        let mut grants = Vec::new();
        for entry in file.token {
            let digest = parse_hex_digest(&entry.sha256.to_ascii_lowercase())
                .ok_or_else(|| TokenFileError::BadDigest { agency: entry.agency.clone() })?;
            if entry.agency != registry.province().code && registry.get(&entry.agency).is_none() {
                return Err(TokenFileError::UnknownAgency(entry.agency));
            }
            grants.push(Grant { agency: entry.agency, digest });
        }
        Ok(Self { grants })
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The agency a presented token speaks for, if any. Every configured digest
    /// is compared (no early exit), so timing does not reveal which one matched.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for grant in &self.grants {
            if constant_time_eq(&presented, &grant.digest) && found.is_none() {
                found = Some(grant.agency.as_str());
            }
        }
        found
    }
}

/// Whether a token of `holder` may submit events of unit `agency_code`:
/// the same unit, a unit below it, or any unit for the province.
pub fn covers(registry: &AgencyRegistry, holder: &str, agency_code: &str) -> bool {
    if holder == registry.province().code {
        return true;
    }
    let mut current = registry.get(agency_code);
    // The registry refuses unknown parents; the bound guards against cycles anyway.
    for _ in 0..16 {
        let Some(agency) = current else { return false };
        if agency.code.as_str() == holder {
            return true;
        }
        current = registry.get(&agency.parent);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> TokenStore {
        let text = format!(
            "[[token]]\nagency = \"SNV\"\nsha256 = \"{}\"\n[[token]]\nagency = \"HY\"\nsha256 = \"{}\"\n",
            sha256_hex("snv-secret"),
            sha256_hex("province-secret")
        );
        TokenStore::from_toml(&text, &AgencyRegistry::demo()).unwrap()
    }

    #[test]
    fn a_token_authenticates_as_its_agency_and_nothing_else_does() {
        let store = store();
        assert_eq!(store.authenticate("snv-secret"), Some("SNV"));
        assert_eq!(store.authenticate("province-secret"), Some("HY"));
        assert_eq!(store.authenticate("snv-secre"), None);
        assert_eq!(store.authenticate(""), None);
    }

    #[test]
    fn a_unit_token_covers_only_its_unit_and_the_province_token_covers_all() {
        let registry = AgencyRegistry::demo();
        assert!(covers(&registry, "SNV", "SNV"));
        assert!(!covers(&registry, "SNV", "STP"));
        assert!(!covers(&registry, "SNV", "NOWHERE"));
        assert!(covers(&registry, "HY", "STP"));
    }

    #[test]
    fn malformed_token_files_are_refused() {
        let registry = AgencyRegistry::demo();
        assert!(matches!(
            TokenStore::from_toml("[[token]]\nagency = \"SNV\"\nsha256 = \"abc\"\n", &registry),
            Err(TokenFileError::BadDigest { .. })
        ));
        let unknown = format!("[[token]]\nagency = \"X1\"\nsha256 = \"{}\"\n", sha256_hex("x"));
        assert!(matches!(TokenStore::from_toml(&unknown, &registry), Err(TokenFileError::UnknownAgency(_))));
    }
}
