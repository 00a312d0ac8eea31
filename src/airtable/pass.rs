//! Walking every page of a listing ("a pass").
//!
//! Airtable's offsets expire (after minutes, or at a server restart): the next page then fails
//! with 422 `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`. The only cure is to start the pass again from
//! the first page, so [`ListPass`] does that and tells the caller with [`PassEvent::Restarted`]
//! (a caller collecting "ids seen" must account for it). A pass may start from a stored offset
//! ([`ListPass::resume`], the full pull's checkpoint); when Airtable no longer knows it
//! (expired, or `INVALID_OFFSET_VALUE`), the pass starts from the first page the same way.

use super::{AirtableApi, AirtableError, ListParams, Record};

/// What [`ListPass::next`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum PassEvent {
    /// The next page (store it in one transaction).
    Page(Vec<Record>),
    /// The offset expired; the pass starts over from the first page. `restarts` counts them.
    Restarted { restarts: u32 },
}

/// A pass over every page of a listing. Call [`ListPass::next`] until it returns `Ok(None)`.
pub struct ListPass<'a> {
    api: &'a dyn AirtableApi,
    params: ListParams,
    offset: Option<String>,
    done: bool,
    restarts: u32,
    max_restarts: u32,
    pages: u32,
}

impl<'a> ListPass<'a> {
    /// `max_restarts`: how many expired offsets are tolerated before the pass fails.
    pub fn new(api: &'a dyn AirtableApi, params: ListParams, max_restarts: u32) -> Self {
        ListPass {
            api,
            params,
            offset: None,
            done: false,
            restarts: 0,
            max_restarts,
            pages: 0,
        }
    }

    /// A pass that starts at `offset` (a page of an earlier pass) instead of the first page.
    pub fn resume(
        api: &'a dyn AirtableApi,
        params: ListParams,
        offset: Option<String>,
        max_restarts: u32,
    ) -> Self {
        ListPass {
            offset,
            ..ListPass::new(api, params, max_restarts)
        }
    }

    /// The offset of the next page (`None` before the first page and after the last).
    pub fn offset(&self) -> Option<&str> {
        self.offset.as_deref()
    }

    /// The next page, a restart notice, or `None` once the last page was returned.
    pub async fn next(&mut self) -> Result<Option<PassEvent>, AirtableError> {
        if self.done {
            return Ok(None);
        }
        match self
            .api
            .list_page(&self.params, self.offset.as_deref())
            .await
        {
            Ok(page) => {
                self.pages += 1;
                self.offset = page.offset;
                self.done = self.offset.is_none();
                Ok(Some(PassEvent::Page(page.records)))
            }
            Err(e)
                if self.offset.is_some()
                    && (e.is_iterator_expired()
                        || e.unprocessable_kind()
                            == Some(&super::UnprocessableKind::InvalidOffsetValue)) =>
            {
                self.restarts += 1;
                if self.restarts > self.max_restarts {
                    return Err(e);
                }
                tracing::info!(
                    restarts = self.restarts,
                    "Airtable list offset expired; restarting the pass"
                );
                self.offset = None;
                Ok(Some(PassEvent::Restarted {
                    restarts: self.restarts,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// Pages returned so far (restarted pages included).
    pub fn pages(&self) -> u32 {
        self.pages
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// Every record of a listing, in one vector (restarts handled).
pub async fn list_all(
    api: &dyn AirtableApi,
    params: ListParams,
    max_restarts: u32,
) -> Result<Vec<Record>, AirtableError> {
    let mut pass = ListPass::new(api, params, max_restarts);
    let mut out = Vec::new();
    while let Some(ev) = pass.next().await? {
        match ev {
            PassEvent::Page(records) => out.extend(records),
            PassEvent::Restarted { .. } => out.clear(),
        }
    }
    Ok(out)
}
