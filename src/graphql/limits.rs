//! What one GraphQL operation may cost (SPEC §14), checked before anything runs.
//!
//! **Cost, not field count.** async-graphql counts every field 1 and a list once, whatever its
//! length; so 600 aliases of `duplicateCandidates(first: 1000)` counted 600 and ran for 32 s. Here
//! a list field costs its length times what is asked of each item ([`list`]: `first`, its
//! default included, times the child selection), and the fields that do real work cost what
//! that work is worth ([`COST_SEARCH`], [`COST_SCAN`], [`COST_REPORT`], ...), with the
//! `#[graphql(complexity = ...)]` of each field. The [`Limits`] extension then compares the total
//! with the caller's role budget ([`budget`]) and refuses an operation over it at once with
//! `LIMIT`, naming its cost and the budget.
//!
//! | role | budget (default; setting) | what fits |
//! |---|---|---|
//! | read | [`BUDGET_READ`]; `GRAPHQL_BUDGET_READ` | `leads(first: 1000)` with 30 fields of each lead, or 40 searches of 20 |
//! | write | [`BUDGET_WRITE`]; `GRAPHQL_BUDGET_WRITE` | the same, plus `createLeads` of 5,000 inputs |
//! | admin | [`BUDGET_ADMIN`]; `GRAPHQL_BUDGET_ADMIN` | four times a read |
//!
//! **Time and size.** Every query runs under `GRAPHQL_TIMEOUT_MS` (default 10 s): when
//! it passes, the operation's future is dropped, so no resolver, DataLoader batch or database call
//! of it starts any more, and the caller gets `LIMIT`. A database call already running on the
//! blocking pool finishes its own statements first: diesel 2.3 gives no handle on the connection
//! for `sqlite3_interrupt`, so each call is kept short instead (every list has a `first` cap, every
//! filter an index, and the cost budget bounds how many run). The admin `sql` console, on a
//! rusqlite connection, is interrupted inside SQLite (`crate::sqlconsole`). Work that runs long
//! inside one call checks the operation's [`Cancel`] flag, set when the time is up: the duplicate
//! scan of `duplicateCandidates` (about a second at 100,000 leads) stops there with `LIMIT`. A response whose data
//! would serialise to more than `MAX_RESPONSE_BYTES` (default 16 MiB) is replaced by a `LIMIT`
//! error; the size is counted while serialising into a counter that stops at the cap.
//! Mutations are not cut off by the time limit: a write that committed must not be answered
//! with an error the client would retry; their cost is bounded by their input caps instead.
//!
//! **Costly operations take turns.** A budget bounds one operation, not how many run at once:
//! four clients looping over requests that fit their budget (`leads(first: 1000)`, a duplicate
//! scan) kept both cores busy and made every `lead(id)` wait (hostile bench, BENCHMARKS.md). So
//! an operation that costs more than [`COSTLY`] runs only while it holds one of
//! [`COSTLY_AT_ONCE`] turns; it waits for one up to its time limit, then fails with `LIMIT`.
//! Cheap operations (a lead by id, a page of 50) never wait.
//!
//! **Depth, without introspection.** Data queries stay limited to [`MAX_DEPTH`] levels. The
//! standard introspection queries (graphql-js `getIntrospectionQuery`, GraphiQL's, Apollo's) nest
//! about 14 levels through `__schema`/`__type` and the `TypeRef` fragment, so the depth is
//! counted here, in the parse hook, without the fields under `__schema` and `__type`.
//! Introspection has limits of its own, made for what it can cost: the `ofType` chain is one
//! object a level (bounded by the parser's recursion limit), but lists inside lists multiply
//! (`types { fields { type { fields { ... } } } }` grows with the schema's size to the power of
//! the nesting). The standard queries nest at most three lists (`types > fields > args`), so an
//! operation may nest at most [`MAX_INTROSPECTION_LISTS`] introspection lists and hold at most
//! [`MAX_INTROSPECTION_ROOTS`] `__schema`/`__type` fields.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError, ValidationResult, Variables};

use crate::auth::{Caller, Role};

/// Deepest data query accepted (a lead's events' ... nesting is about 5 deep in practice).
pub const MAX_DEPTH: usize = 12;
/// From this cost on an operation is costly and takes turns (see the module doc).
pub const COSTLY: usize = 5_000;
/// Costly operations running at once, server-wide (one core of two stays for the rest).
pub const COSTLY_AT_ONCE: usize = 1;
/// Most introspection lists (`types`, `fields`, `args`, ...) nested inside each other.
pub const MAX_INTROSPECTION_LISTS: usize = 3;
/// Most `__schema` and `__type` fields in one operation (aliases and fragment uses included).
pub const MAX_INTROSPECTION_ROOTS: usize = 4;
/// Budget of a `read` caller.
pub const BUDGET_READ: usize = 50_000;
/// Budget of a `write` caller: a `createLeads` of 5,000 inputs costs 5,000 plus its selection.
pub const BUDGET_WRITE: usize = 60_000;
/// Budget of an `admin` caller.
pub const BUDGET_ADMIN: usize = 200_000;
/// A full-text search: the index walk and ranking, on top of its rows.
pub const COST_SEARCH: usize = 200;
/// A scan of every live lead's duplicate keys (`duplicateCandidates`).
pub const COST_SCAN: usize = 20_000;
/// The whole report (counts, funnel, medians over the history).
pub const COST_REPORT: usize = 5_000;
/// One lead's duplicate lookups (`Lead.duplicates`: three index lookups and a block).
pub const COST_LOOKUP: usize = 50;
/// `cacheStatus`: a dozen counts over the leads and the outbox.
pub const COST_STATUS: usize = 50;
/// A lead fetched from Airtable when it is not in the cache (`lead(id: "rec…")`).
pub const COST_READ_THROUGH: usize = 100;
/// Rows a list without a `first` argument may return (`conflicts`, `outbox`, `backups`, ...).
pub const UNPAGED_ROWS: usize = 1_000;

/// The budget of a role, from the configured `[read, write, admin]` budgets.
pub fn budget(budgets: &[usize; 3], role: Role) -> usize {
    match role {
        Role::Read => budgets[0],
        Role::Write => budgets[1],
        Role::Admin => budgets[2],
    }
}

/// The cost of a list field: each of its `first` items (`default` when not given; a negative or
/// huge value is refused later by the field itself, and is counted as the cap here) costs the
/// selection under it, plus 1 for the field.
pub fn list(first: Option<i32>, default: usize, child: usize) -> usize {
    let n = first.map_or(default, |n| usize::try_from(n).unwrap_or(0));
    n.min(crate::leads::query::MAX_FIRST as usize)
        .max(1)
        .saturating_mul(child.max(1))
        .saturating_add(1)
}

/// The cost of a list field that takes no `first`: as many rows as it may return.
pub fn unpaged(child: usize) -> usize {
    list(None, UNPAGED_ROWS, child)
}

/// The extension that applies the depth limit, the role budgets, the time limit and the
/// response size cap (see the module doc).
pub struct Limits {
    /// `GRAPHQL_TIMEOUT_MS`.
    pub timeout: std::time::Duration,
    /// `MAX_RESPONSE_BYTES`.
    pub max_response_bytes: usize,
    /// `GRAPHQL_BUDGET_READ`, `_WRITE`, `_ADMIN`.
    pub budgets: [usize; 3],
    /// The turns of costly operations ([`COSTLY_AT_ONCE`]), shared by the server's requests.
    pub turns: Arc<tokio::sync::Semaphore>,
}

impl Limits {
    /// The limits of a server with these settings.
    pub fn new(
        timeout: std::time::Duration,
        max_response_bytes: usize,
        budgets: [usize; 3],
    ) -> Self {
        Limits {
            timeout,
            max_response_bytes,
            budgets,
            turns: Arc::new(tokio::sync::Semaphore::new(COSTLY_AT_ONCE)),
        }
    }
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension {
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            budgets: self.budgets,
            turns: self.turns.clone(),
            cost: std::sync::atomic::AtomicUsize::new(0),
            writes: std::sync::atomic::AtomicBool::new(false),
            cancel: Cancel::default(),
        })
    }
}

struct LimitsExtension {
    timeout: std::time::Duration,
    max_response_bytes: usize,
    budgets: [usize; 3],
    turns: Arc<tokio::sync::Semaphore>,
    /// The operation's cost, once validated.
    cost: std::sync::atomic::AtomicUsize,
    /// The document holds a mutation (set when it is parsed): no time limit.
    writes: std::sync::atomic::AtomicBool,
    /// Set when the time is up; in the request's data for the resolvers.
    cancel: Cancel,
}

/// Set when an operation's time is up (see the module doc); resolvers hand it to long work.
#[derive(Clone, Default)]
pub struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// The flag of the operation `ctx` belongs to (a fresh, never-set one outside the schema's
    /// extension, as in `leadcache schema`).
    pub fn of(ctx: &async_graphql::Context<'_>) -> Arc<std::sync::atomic::AtomicBool> {
        ctx.data_opt::<Cancel>()
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }

    fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Counts bytes written and fails once there are more than `max`.
struct Counter {
    n: usize,
    max: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n = self.n.saturating_add(buf.len());
        if self.n > self.max {
            return Err(std::io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `value` serialises to at most `max` bytes (stops counting at the cap).
pub fn fits(value: &async_graphql::Value, max: usize) -> bool {
    let mut counter = Counter { n: 0, max };
    serde_json::to_writer(&mut counter, value).is_ok()
}

fn limit_error(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "LIMIT");
    error.extensions = Some(ext);
    error
}

#[async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        next.run(ctx, request.data(self.cancel.clone())).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let writes = doc
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Mutation);
        self.writes
            .store(writes, std::sync::atomic::Ordering::Relaxed);
        let (roots, lists) = introspection(&doc);
        if lists > MAX_INTROSPECTION_LISTS {
            return Err(limit_error(format!(
                "the introspection query is nested too deep: it has {lists} lists (types, fields, \
                 args, ...) inside each other, at most {MAX_INTROSPECTION_LISTS} are allowed"
            )));
        }
        if roots > MAX_INTROSPECTION_ROOTS {
            return Err(limit_error(format!(
                "the query asks for __schema or __type {roots} times; at most \
                 {MAX_INTROSPECTION_ROOTS} are allowed"
            )));
        }
        let depth = data_depth(&doc);
        if depth > MAX_DEPTH {
            return Err(limit_error(format!(
                "the query is nested {depth} levels deep; at most {MAX_DEPTH} are allowed \
                 (introspection under __schema and __type is not counted)"
            )));
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        let costly = self.cost.load(std::sync::atomic::Ordering::Relaxed) >= COSTLY;
        let response = if self.writes.load(std::sync::atomic::Ordering::Relaxed) {
            let _turn = if costly {
                self.turns.clone().acquire_owned().await.ok()
            } else {
                None
            };
            Ok(next.run(ctx, operation_name).await)
        } else {
            tokio::time::timeout(self.timeout, async {
                let _turn = if costly {
                    self.turns.clone().acquire_owned().await.ok()
                } else {
                    None
                };
                next.run(ctx, operation_name).await
            })
            .await
        };
        let Ok(response) = response else {
            self.cancel.set();
            return async_graphql::Response::from_errors(vec![limit_error(format!(
                "the operation ran longer than {} ms (GRAPHQL_TIMEOUT_MS) and was stopped; ask \
                 for less, or split it into several requests",
                self.timeout.as_millis()
            ))]);
        };
        if !fits(&response.data, self.max_response_bytes) {
            let mut errors = vec![limit_error(format!(
                "the response is larger than {} bytes (MAX_RESPONSE_BYTES); ask for fewer rows \
                 (first) or fewer fields",
                self.max_response_bytes
            ))];
            errors.extend(response.errors);
            return async_graphql::Response::from_errors(errors);
        }
        response
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        self.cost
            .store(result.complexity, std::sync::atomic::Ordering::Relaxed);
        let role = ctx.data_opt::<Caller>().map_or(Role::Read, |c| c.role);
        let budget = budget(&self.budgets, role);
        if result.complexity > budget {
            return Err(vec![limit_error(format!(
                "the query costs {} and the {} role's budget is {budget} per operation \
                 (GRAPHQL_BUDGET_{}): ask for fewer rows (first), fewer fields or fewer aliases, \
                 or split it into several requests",
                result.complexity,
                role.as_str(),
                role.as_str().to_ascii_uppercase()
            ))]);
        }
        Ok(result)
    }
}

/// The depth of the deepest operation of `doc`, not counting what lies under `__schema` and
/// `__type`. A fragment spread counts the fragment's depth; a cycle of fragments (refused by
/// validation later) is cut.
pub fn data_depth(doc: &ExecutableDocument) -> usize {
    let mut deepest = 0;
    for (_, op) in doc.operations.iter() {
        let mut path = HashSet::new();
        deepest = deepest.max(set_depth(doc, &op.node.selection_set.node, &mut path));
    }
    deepest
}

fn set_depth<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    path: &mut HashSet<&'a str>,
) -> usize {
    let mut deepest = 0;
    for item in &set.items {
        let depth = match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                if name == "__schema"
                    || name == "__type"
                    || field.node.selection_set.node.items.is_empty()
                {
                    1
                } else {
                    1 + set_depth(doc, &field.node.selection_set.node, path)
                }
            }
            Selection::InlineFragment(inline) => {
                set_depth(doc, &inline.node.selection_set.node, path)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match doc.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) if path.insert(name) => {
                        let d = set_depth(doc, &fragment.node.selection_set.node, path);
                        path.remove(name);
                        d
                    }
                    _ => 0,
                }
            }
        };
        deepest = deepest.max(depth);
    }
    deepest
}

/// The introspection fields that return lists.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "args",
    "directives",
];

/// How many `__schema`/`__type` fields the operations of `doc` hold (each use of a fragment
/// counted), and the most introspection lists nested inside each other under one of them.
pub fn introspection(doc: &ExecutableDocument) -> (usize, usize) {
    let mut walk = Walk {
        doc,
        roots: 0,
        lists: 0,
        path: HashSet::new(),
    };
    for (_, op) in doc.operations.iter() {
        walk.set(&op.node.selection_set.node, None);
    }
    (walk.roots, walk.lists)
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    roots: usize,
    lists: usize,
    /// Fragments being walked (a cycle, refused by validation later, is cut).
    path: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    /// `inside`: `Some(n)` under an introspection root, with `n` lists above.
    fn set(&mut self, set: &'a SelectionSet, inside: Option<usize>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let inside = match inside {
                        None if name == "__schema" || name == "__type" => {
                            self.roots += 1;
                            Some(0)
                        }
                        Some(n) if INTROSPECTION_LISTS.contains(&name) => {
                            self.lists = self.lists.max(n + 1);
                            Some(n + 1)
                        }
                        other => other,
                    };
                    self.set(&field.node.selection_set.node, inside);
                }
                Selection::InlineFragment(inline) => {
                    self.set(&inline.node.selection_set.node, inside);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                        && self.path.insert(name)
                    {
                        self.set(&fragment.node.selection_set.node, inside);
                        self.path.remove(name);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(q: &str) -> usize {
        data_depth(&async_graphql::parser::parse_query(q).unwrap())
    }

    #[test]
    fn depth_counts_data_fields_and_fragments_but_not_introspection() {
        assert_eq!(depth("{ a }"), 1);
        assert_eq!(depth("{ a { b { c } } }"), 3);
        assert_eq!(depth("{ a { ...F } } fragment F on T { b { c } }"), 3);
        assert_eq!(depth("{ ... on Q { a { b } } }"), 2);
        assert_eq!(
            depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"),
            1
        );
        assert_eq!(depth("{ a ...F } fragment F on Q { ...F b { c } }"), 2);
    }

    #[test]
    fn introspection_counts_roots_and_nested_lists() {
        let doc = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        assert_eq!(
            introspection(&doc(
                "{ __schema { types { fields { args { type { ofType { name } } } } } } }"
            )),
            (1, 3)
        );
        assert_eq!(
            introspection(&doc(
                "{ a: __type(name: \"A\") { ...F } b: __type(name: \"B\") { ...F } } fragment F on __Type { fields { type { fields { name } } } }"
            )),
            (2, 2)
        );
        assert_eq!(
            introspection(&doc("{ leads { nodes { fields: id } } }")),
            (0, 0)
        );
    }

    #[test]
    fn a_list_costs_its_rows_times_its_selection() {
        assert_eq!(list(Some(1000), 50, 10), 10_001);
        assert_eq!(list(None, 50, 10), 501);
        assert_eq!(list(Some(-5), 50, 10), 11);
        assert_eq!(list(Some(i32::MAX), 50, 1), 1001);
        assert_eq!(unpaged(2), 2001);
    }
}
