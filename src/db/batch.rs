//! Multi-row INSERTs whose prepared statement is kept.
//!
//! Diesel caches a prepared statement by the Rust type of the query, and a `Vec` or slice of rows
//! does not say how many rows there are: an INSERT of a slice has its SQL text built and
//! prepared again on every call (a 500-row INSERT of leads is 17,000 placeholders). A
//! `&[T; N]` does say it, so [`insert`] writes full chunks of [`ROWS`] rows as arrays, prepared
//! once per connection and reused, and cuts the shorter rest into arrays of [`ROWS_MEDIUM`],
//! [`ROWS_SMALL`] and single rows, each also prepared once: a rest costs at most 22 statements
//! (499 = 9 x 50 + 9 x 5 + 4), none of them prepared again. (Before the rest was cut, the shorter
//! batches of a 100,000-lead import, ended early to look up a duplicate, spent 5 % of the import
//! preparing.)

use diesel::dsl::Values;
use diesel::prelude::*;
use diesel::query_builder::IncompleteInsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::{Insertable, Table};

/// Rows per statement. Sized for the widest row written this way, a lead (34 values): 17,000
/// bound parameters, under SQLite's 32,766.
pub const ROWS: usize = 500;
/// The chunk sizes a rest shorter than [`ROWS`] is cut into, before single rows.
pub const ROWS_MEDIUM: usize = 50;
pub const ROWS_SMALL: usize = 5;

/// Inserts any number of `rows` into `table`, in chunks of a fixed size (see the module doc).
pub fn insert<'a, Tab, T>(
    conn: &mut SqliteConnection,
    table: Tab,
    rows: &'a [T],
) -> QueryResult<usize>
where
    Tab: Table + Copy,
    &'a [T; ROWS]: Insertable<Tab>,
    &'a [T; ROWS_MEDIUM]: Insertable<Tab>,
    &'a [T; ROWS_SMALL]: Insertable<Tab>,
    &'a [T; 1]: Insertable<Tab>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; ROWS]>: ExecuteDsl<SqliteConnection>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; ROWS_MEDIUM]>: ExecuteDsl<SqliteConnection>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; ROWS_SMALL]>: ExecuteDsl<SqliteConnection>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; 1]>: ExecuteDsl<SqliteConnection>,
{
    let (full, rest) = chunks::<Tab, T, ROWS>(conn, table, rows)?;
    let (medium, rest) = chunks::<Tab, T, ROWS_MEDIUM>(conn, table, rest)?;
    let (small, rest) = chunks::<Tab, T, ROWS_SMALL>(conn, table, rest)?;
    let (single, rest) = chunks::<Tab, T, 1>(conn, table, rest)?;
    debug_assert!(rest.is_empty());
    Ok(full + medium + small + single)
}

/// Inserts the whole chunks of `N` rows at the start of `rows`; returns the count stored and
/// the rest.
fn chunks<'a, Tab, T, const N: usize>(
    conn: &mut SqliteConnection,
    table: Tab,
    rows: &'a [T],
) -> QueryResult<(usize, &'a [T])>
where
    Tab: Table + Copy,
    &'a [T; N]: Insertable<Tab>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; N]>: ExecuteDsl<SqliteConnection>,
{
    let (full, rest) = rows.as_chunks::<N>();
    let mut count = 0;
    for chunk in full {
        count += diesel::insert_into(table).values(chunk).execute(conn)?;
    }
    Ok((count, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    diesel::table! {
        nums (id) {
            id -> Integer,
            n -> Integer,
            label -> Nullable<Text>,
        }
    }

    #[derive(Debug, Clone, PartialEq, Insertable, Queryable)]
    #[diesel(table_name = nums, treat_none_as_default_value = false)]
    struct Num {
        n: i32,
        label: Option<String>,
    }

    /// Full chunks, the rest, and the sizes around the chunk length all store every row once,
    /// in order; an error in a later chunk is an error, not a silent short count.
    #[test]
    fn stores_every_row_in_order_whatever_the_count() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE nums (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0), label TEXT)",
        )
        .unwrap();
        for count in [
            0,
            1,
            ROWS_SMALL + 1,
            ROWS_MEDIUM + ROWS_SMALL + 2,
            ROWS - 1,
            ROWS,
            ROWS + 1,
            2 * ROWS,
            2 * ROWS + 3,
        ] {
            diesel::delete(nums::table).execute(&mut conn).unwrap();
            let rows: Vec<Num> = (0..count as i32)
                .map(|n| Num {
                    n,
                    label: (n % 3 == 0).then(|| format!("row {n}")),
                })
                .collect();
            let stored = insert::<_, Num>(&mut conn, nums::table, &rows).unwrap();
            assert_eq!(stored, rows.len());
            let back: Vec<Num> = nums::table
                .order(nums::id)
                .select((nums::n, nums::label))
                .load(&mut conn)
                .unwrap();
            assert_eq!(back, rows, "{count} rows");
        }
        let mut bad: Vec<Num> = (0..ROWS as i32 + 3)
            .map(|n| Num { n, label: None })
            .collect();
        bad[ROWS + 1].n = -1;
        let err = insert::<_, Num>(&mut conn, nums::table, &bad).unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
    }

    /// Every statement `insert` runs is one the connection keeps prepared, whatever the count:
    /// a rest of 57 rows is 50 + 5 + 1 + 1, all cached, and a second call prepares nothing new.
    #[test]
    fn every_statement_is_cached_whatever_the_count() {
        use diesel::connection::InstrumentationEvent;
        use std::sync::{Arc, Mutex};

        #[derive(Default)]
        struct Seen {
            run: Vec<String>,
            cached: Vec<String>,
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE nums (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, label TEXT)",
        )
        .unwrap();
        let instrumentation = move |event: InstrumentationEvent<'_>| {
            let mut seen = log.lock().unwrap();
            match event {
                InstrumentationEvent::StartQuery { query, .. } => {
                    let text = query.to_string();
                    let sql = text.split(" -- binds:").next().unwrap_or_default();
                    seen.run.push(sql.to_string());
                }
                InstrumentationEvent::CacheQuery { sql, .. } => seen.cached.push(sql.to_string()),
                _ => {}
            }
        };
        conn.set_instrumentation(instrumentation);
        let rows: Vec<Num> = (0..(ROWS + 57) as i32)
            .map(|n| Num { n, label: None })
            .collect();
        assert_eq!(
            insert::<_, Num>(&mut conn, nums::table, &rows).unwrap(),
            ROWS + 57
        );
        let first = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(first.run.len(), 5, "500 + 50 + 5 + 1 + 1");
        for sql in &first.run {
            assert!(first.cached.contains(sql), "not cached: {}", &sql[..60]);
        }
        assert_eq!(first.cached.len(), 4, "one statement per chunk size");
        assert_eq!(
            insert::<_, Num>(&mut conn, nums::table, &rows[..57]).unwrap(),
            57
        );
        let second = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(second.run.len(), 4);
        assert!(
            second.cached.is_empty(),
            "prepared again: {:?}",
            second.cached.len()
        );
    }
}
