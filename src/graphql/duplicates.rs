//! Duplicates (SPEC §11): `duplicateCandidates` lists look-alike pairs (leads pulled from
//! Airtable are never merged automatically), `mergeLeads` merges one pair by hand. The rules and
//! the merge are in `crate::leads::dedup` and `crate::leads::merge`.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};

use crate::auth::Role;
use crate::error::GqlResultExt;
use crate::graphql::types::Lead;
use crate::graphql::{caller, state};
use crate::leads::dedup::{self, Rule};
use crate::leads::query::check_first;

/// The duplicate rule that matched.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DuplicateRule {
    /// Same LinkedIn profile (URL normalised: scheme, `www.`, locale, slash, query, case).
    Linkedin,
    /// Same email, trimmed and case-insensitive.
    Email,
    /// Name and company each at least 85 % similar (normalised Levenshtein, after folding case,
    /// accents, punctuation and legal suffixes).
    NameCompany,
}

impl From<Rule> for DuplicateRule {
    fn from(r: Rule) -> Self {
        match r {
            Rule::Linkedin => DuplicateRule::Linkedin,
            Rule::Email => DuplicateRule::Email,
            Rule::NameCompany => DuplicateRule::NameCompany,
        }
    }
}

/// What `createLead`, `createLeads` (and `import --on-duplicate`) do with an input that
/// duplicates a live lead.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum OnDuplicate {
    /// Merge it into the existing lead: empty fields are filled, differing values are kept in a
    /// `merged` event. A merge that would change nothing writes nothing.
    #[default]
    Merge,
    /// Create it as a lead of its own, without looking for duplicates.
    Create,
    /// Refuse it with CONFLICT naming the existing lead and the rule; nothing is stored.
    Fail,
}

impl From<OnDuplicate> for crate::leads::merge::OnDuplicate {
    fn from(o: OnDuplicate) -> Self {
        match o {
            OnDuplicate::Merge => Self::Merge,
            OnDuplicate::Create => Self::Create,
            OnDuplicate::Fail => Self::Fail,
        }
    }
}

/// Two leads that look like the same person.
#[derive(SimpleObject)]
pub struct DuplicatePair {
    /// The older lead (created first).
    pub a: Lead,
    /// The newer lead.
    pub b: Lead,
    /// The rule that matched.
    pub matched_by: DuplicateRule,
    /// 1 for LINKEDIN and EMAIL; for NAME_COMPANY the lower of the name and company similarity.
    pub score: f64,
}

/// A live lead that looks like the same person as the lead asked about (`Lead.duplicates`).
#[derive(SimpleObject)]
pub struct DuplicateMatch {
    /// The other lead.
    pub lead: Lead,
    /// The strongest rule that matched.
    pub matched_by: DuplicateRule,
    /// 1 for LINKEDIN and EMAIL; for NAME_COMPANY the lower of the name and company similarity.
    pub score: f64,
}

impl From<dedup::Match> for DuplicateMatch {
    fn from(m: dedup::Match) -> Self {
        DuplicateMatch {
            lead: Lead(m.lead),
            matched_by: m.rule.into(),
            score: m.score,
        }
    }
}

#[derive(Default)]
pub struct DuplicatesQuery;

#[Object]
impl DuplicatesQuery {
    /// Pairs of live leads that look alike: LinkedIn matches first, then email, then name and
    /// company by score. Nothing is merged; use `mergeLeads`.
    #[graphql(
        complexity = "crate::graphql::limits::list(first, 50, child_complexity) + crate::graphql::limits::COST_SCAN"
    )]
    async fn duplicate_candidates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(50)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<DuplicatePair>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let first = check_first(i64::from(first.unwrap_or(50))).gql()? as usize;
        let stop = crate::graphql::limits::Cancel::of(ctx);
        let pairs = state(ctx)
            .db
            .run(move |c| dedup::candidate_pairs(c, first, &stop))
            .await
            .gql()?;
        Ok(pairs
            .into_iter()
            .map(|p| DuplicatePair {
                a: Lead(p.a),
                b: Lead(p.b),
                matched_by: p.rule.into(),
                score: p.score,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct DuplicatesMutation;

#[Object]
impl DuplicatesMutation {
    /// Merges lead `mergeId` into lead `keepId`: the kept lead takes the other's values where it
    /// has none (differing values are kept in a `merged` event), the other's events, enrichments
    /// and campaign memberships move to the kept lead, and the other is soft-deleted. Both
    /// changes are queued for Airtable. Returns the kept lead.
    async fn merge_leads(
        &self,
        ctx: &Context<'_>,
        keep_id: ID,
        merge_id: ID,
    ) -> async_graphql::Result<Lead> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let (kept, merged) = state
            .db
            .write(move |c| crate::leads::merge::merge_leads(c, &wctx, &keep_id, &merge_id))
            .await
            .gql()?;
        state.bus.publish(&kept, &caller.name);
        state.bus.publish(&merged, &caller.name);
        state.lead_written();
        Ok(Lead(kept.lead))
    }
}
