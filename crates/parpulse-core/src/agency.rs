//! The agency registry (danh mục đơn vị): which units report, their Vietnamese
//! names and the group they roll up into (departments or districts).
//!
//! Loaded from TOML (`deploy/agencies.toml` is the demo province); an event whose
//! agency code is not in the registry is rejected by [`crate::validate`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A unit's registry key: ASCII upper-case letters, digits and `_`, 2 to 32 characters.
/// It is also the Kafka message key, so one unit's events stay in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgencyCode(String);

impl AgencyCode {
    pub fn parse(code: &str) -> Result<Self, RegistryError> {
        let well_formed = (2..=32).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if well_formed {
            Ok(Self(code.to_owned()))
        } else {
            Err(RegistryError::BadCode(code.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgencyCode {
    type Error = RegistryError;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<AgencyCode> for String {
    fn from(code: AgencyCode) -> Self {
        code.0
    }
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The roll-up group of a unit: unit -> group -> province.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgencyGroup {
    /// Sở, ban, ngành: provincial departments and boards.
    Department,
    /// UBND huyện, thị xã, thành phố: district-level People's Committees.
    District,
}

impl AgencyGroup {
    pub const ALL: [AgencyGroup; 2] = [AgencyGroup::Department, AgencyGroup::District];

    /// Stable label value for metrics and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            AgencyGroup::Department => "department",
            AgencyGroup::District => "district",
        }
    }

    /// Vietnamese name as shown in dashboards.
    pub fn name_vi(self) -> &'static str {
        match self {
            AgencyGroup::Department => "Sở, ban, ngành",
            AgencyGroup::District => "UBND cấp huyện",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    pub code: AgencyCode,
    /// Vietnamese name (UTF-8), e.g. "Sở Nội vụ".
    pub name: String,
    pub group: AgencyGroup,
    /// The unit above: the province's code for departments and districts.
    pub parent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Province {
    pub code: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("agency registry is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("agency code {0:?} is malformed: use 2-32 characters of A-Z, 0-9 and _")]
    BadCode(String),
    #[error("agency code {0} is listed twice in the registry")]
    Duplicate(String),
    #[error("agency {code} names parent {parent:?}, which is neither the province nor a listed unit")]
    UnknownParent { code: String, parent: String },
    #[error("the agency registry lists no agency")]
    Empty,
}

#[derive(Deserialize)]
struct RegistryFile {
    province: Province,
    #[serde(default)]
    agency: Vec<Agency>,
}

/// All reporting units of one province, keyed by code (sorted, so listings are stable).
#[derive(Debug, Clone)]
pub struct AgencyRegistry {
    province: Province,
    agencies: BTreeMap<AgencyCode, Agency>,
}

impl AgencyRegistry {
    /// The demo province shipped with parpulse (`deploy/agencies.toml`).
    pub fn demo() -> Self {
        Self::from_toml(include_str!("../../../deploy/agencies.toml"))
            .expect("deploy/agencies.toml is valid (checked by a unit test)")
    }

    pub fn from_toml(text: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text)?;
        if file.agency.is_empty() {
            return Err(RegistryError::Empty);
        }
        let mut agencies = BTreeMap::new();
        for agency in file.agency {
            let code = agency.code.clone();
            if agencies.insert(code.clone(), agency).is_some() {
                return Err(RegistryError::Duplicate(code.to_string()));
            }
        }
        for agency in agencies.values() {
            let parent_known = agency.parent == file.province.code
                || AgencyCode::parse(&agency.parent).is_ok_and(|p| agencies.contains_key(&p));
            if !parent_known {
                return Err(RegistryError::UnknownParent {
                    code: agency.code.to_string(),
                    parent: agency.parent.clone(),
                });
            }
        }
        Ok(Self { province: file.province, agencies })
    }

    pub fn province(&self) -> &Province {
        &self.province
    }

    pub fn get(&self, code: &str) -> Option<&Agency> {
        AgencyCode::parse(code).ok().and_then(|code| self.agencies.get(&code))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.values()
    }

    pub fn len(&self) -> usize {
        self.agencies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agencies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_registry_has_twenty_departments_and_ten_districts() {
        let registry = AgencyRegistry::demo();
        let count = |g| registry.iter().filter(|a| a.group == g).count();
        assert!(count(AgencyGroup::Department) >= 20);
        assert_eq!(count(AgencyGroup::District), 10);
        assert_eq!(registry.get("KHOAICHAU").unwrap().name, "UBND huyện Khoái Châu");
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in ["", "a", "snv", "S NV", "SỞ", &"X".repeat(33)] {
            assert!(AgencyCode::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(AgencyCode::parse("SNV_2").is_ok());
    }

    #[test]
    fn duplicate_codes_are_refused() {
        let text = r#"
            province = { code = "HY", name = "Tỉnh Hưng Yên" }
            [[agency]]
            code = "SNV"
            name = "Sở Nội vụ"
            group = "department"
            parent = "HY"
            [[agency]]
            code = "SNV"
            name = "Sở Nội vụ (bis)"
            group = "department"
            parent = "HY"
        "#;
        assert!(matches!(AgencyRegistry::from_toml(text), Err(RegistryError::Duplicate(c)) if c == "SNV"));
    }

    #[test]
    fn unknown_parent_is_refused() {
        let text = r#"
            province = { code = "HY", name = "Tỉnh Hưng Yên" }
            [[agency]]
            code = "XA1"
            name = "UBND xã"
            group = "district"
            parent = "NOWHERE"
        "#;
        assert!(matches!(AgencyRegistry::from_toml(text), Err(RegistryError::UnknownParent { .. })));
    }
}
