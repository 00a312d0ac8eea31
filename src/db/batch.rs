//! Multi-row INSERTs whose prepared statement is kept.
//!
//! Diesel caches a prepared statement by the Rust type of the query, and a `Vec` or slice of rows
//! does not say how many rows there are: an INSERT of a slice has its SQL text built and
//! prepared again on every call (a 500-row INSERT of leads is 17,000 placeholders). A
//! `&[T; ROWS]` does say it, so [`insert`] writes full chunks of [`ROWS`] rows as arrays, prepared
//! once per connection and reused, and only the shorter rest as a slice.

use diesel::dsl::Values;
use diesel::prelude::*;
use diesel::query_builder::IncompleteInsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::{Insertable, Table};

/// Rows per statement. Sized for the widest row written this way, a lead (34 values): 17,000
/// bound parameters, under SQLite's 32,766.
pub const ROWS: usize = 500;

/// Inserts any number of `rows` into `table`, [`ROWS`] a statement (see the module doc).
pub fn insert<'a, Tab, T>(
    conn: &mut SqliteConnection,
    table: Tab,
    rows: &'a [T],
) -> QueryResult<usize>
where
    Tab: Table + Copy,
    &'a [T; ROWS]: Insertable<Tab>,
    &'a [T]: Insertable<Tab>,
    Values<IncompleteInsertStatement<Tab>, &'a [T; ROWS]>: ExecuteDsl<SqliteConnection>,
    Values<IncompleteInsertStatement<Tab>, &'a [T]>: ExecuteDsl<SqliteConnection>,
{
    let (full, rest) = rows.as_chunks::<ROWS>();
    let mut count = 0;
    for chunk in full {
        count += diesel::insert_into(table).values(chunk).execute(conn)?;
    }
    if !rest.is_empty() {
        count += diesel::insert_into(table).values(rest).execute(conn)?;
    }
    Ok(count)
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
        for count in [0, 1, ROWS - 1, ROWS, ROWS + 1, 2 * ROWS, 2 * ROWS + 3] {
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
}
