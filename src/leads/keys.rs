//! Normalised keys for duplicate detection (SPEC §11), stored on every lead and indexed, so a
//! duplicate check is an index lookup, never a scan.
//!
//! - `email_key`: trimmed, lower case.
//! - `linkedin_key`: the profile path of a LinkedIn URL, whatever the scheme, `www.` or locale
//!   subdomain, trailing slash, query string or slug case: `in/jane-doe`.
//! - `company_key`: the company without case, accents, punctuation or legal suffixes
//!   (`ACME, Inc.` and `Acme` are both `acme`). It is the blocking key for fuzzy matching.
//! - `name_company_key`: `name|company`, both normalised.

use deunicode::deunicode;

/// Legal-form words dropped from the end of a company name.
const COMPANY_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "gmbh",
    "sa",
    "sas",
    "sarl",
    "ag",
    "bv",
    "nv",
    "plc",
    "corp",
    "corporation",
    "co",
    "company",
    "srl",
    "spa",
    "oy",
    "ab",
    "as",
    "aps",
    "pty",
    "kg",
    "lp",
    "llp",
    "pte",
    "kk",
    "se",
    "sl",
    "sro",
    "oü",
    "ou",
    "group",
];

/// Lower case, accents folded to ASCII, anything but letters and digits turned into single spaces.
pub fn normalize_text(s: &str) -> String {
    let folded = deunicode(s).to_lowercase();
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

pub fn normalize_name(s: &str) -> Option<String> {
    Some(normalize_text(s)).filter(|n| !n.is_empty())
}

pub fn normalize_company(s: &str) -> Option<String> {
    let text = normalize_text(s);
    let mut words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    while words.len() > 1 && words.last().is_some_and(|w| COMPANY_SUFFIXES.contains(w)) {
        words.pop();
    }
    Some(words.join(" ")).filter(|c| !c.is_empty())
}

pub fn email_key(email: &str) -> Option<String> {
    Some(email.trim().to_lowercase()).filter(|e| !e.is_empty())
}

/// `in/<slug>` (or `company/<slug>`, `pub/<slug>`) of a LinkedIn URL; `None` for anything else.
pub fn linkedin_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if host != "linkedin.com" && !host.ends_with(".linkedin.com") {
        return None;
    }
    let mut segments = url.path_segments()?.filter(|s| !s.is_empty());
    let kind = segments.next()?.to_ascii_lowercase();
    if !matches!(kind.as_str(), "in" | "pub" | "company") {
        return None;
    }
    let slug = segments.next()?;
    let slug = percent_decode(slug).to_lowercase();
    Some(format!("{kind}/{slug}"))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .unwrap_or_default()
}

/// The four keys of a lead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub email: Option<String>,
    pub linkedin: Option<String>,
    pub company: Option<String>,
    pub name_company: Option<String>,
}

pub fn keys(
    full_name: &str,
    email: Option<&str>,
    linkedin: Option<&str>,
    company: Option<&str>,
) -> Keys {
    let company_key = company.and_then(normalize_company);
    let name_company = match (normalize_name(full_name), &company_key) {
        (Some(n), Some(c)) => Some(format!("{n}|{c}")),
        _ => None,
    };
    Keys {
        email: email.and_then(email_key),
        linkedin: linkedin.and_then(linkedin_key),
        company: company_key,
        name_company,
    }
}

/// Recomputes the stored keys of a lead after its fields changed.
pub fn apply(lead: &mut crate::db::models::Lead) {
    let k = keys(
        &lead.full_name,
        lead.email.as_deref(),
        lead.linkedin_url.as_deref(),
        lead.company.as_deref(),
    );
    lead.email_key = k.email;
    lead.linkedin_key = k.linkedin;
    lead.company_key = k.company;
    lead.name_company_key = k.name_company;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkedin_variants_share_a_key() {
        for url in [
            "https://www.linkedin.com/in/Jane-Doe/",
            "http://linkedin.com/in/jane-doe?trk=abc",
            "linkedin.com/in/jane-doe",
            "https://de.linkedin.com/in/JANE-DOE#about",
        ] {
            assert_eq!(linkedin_key(url).as_deref(), Some("in/jane-doe"), "{url}");
        }
        assert_eq!(linkedin_key("https://example.com/in/jane-doe"), None);
        assert_eq!(linkedin_key("https://www.linkedin.com/feed/"), None);
    }

    #[test]
    fn companies_lose_case_accents_punctuation_and_suffixes() {
        assert_eq!(normalize_company("ACME, Inc.").as_deref(), Some("acme"));
        assert_eq!(normalize_company("Müller GmbH").as_deref(), Some("muller"));
        assert_eq!(
            normalize_company("Big Data Co. Ltd").as_deref(),
            Some("big data")
        );
        assert_eq!(
            normalize_company("Inc").as_deref(),
            Some("inc"),
            "a name made only of a suffix stays"
        );
        assert_eq!(normalize_company(" ... "), None);
    }

    #[test]
    fn names_and_emails() {
        assert_eq!(
            normalize_name("  José  O'Brien ").as_deref(),
            Some("jose o brien")
        );
        assert_eq!(
            email_key("  Jane@Example.COM ").as_deref(),
            Some("jane@example.com")
        );
        let k = keys("Jane Doe", None, None, Some("Acme Ltd"));
        assert_eq!(k.name_company.as_deref(), Some("jane doe|acme"));
    }
}
