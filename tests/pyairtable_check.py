#!/usr/bin/env python3
"""Runs pyairtable, unchanged, against the leadcache Airtable simulator.

Environment: AIRTABLE_API_URL (the simulator), AIRTABLE_API_KEY, AIRTABLE_BASE_ID, AIRTABLE_TABLE.
The table must hold at least 101 records (so listing spans pages). Exits non-zero on any failure.
Needs `pip install pyairtable`.
"""
import os
import sys

try:
    from pyairtable import Api
    from pyairtable.formulas import match
except ImportError:
    sys.exit("pyairtable is not installed: pip install pyairtable")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def main():
    url = os.environ["AIRTABLE_API_URL"]
    api = Api(os.environ["AIRTABLE_API_KEY"], endpoint_url=url)
    table = api.table(os.environ["AIRTABLE_BASE_ID"], os.environ.get("AIRTABLE_TABLE", "Leads"))

    records = table.all()
    check(len(records) > 100, f"all() pages through {len(records)} records")
    ids = [r["id"] for r in records]
    check(len(set(ids)) == len(ids), "no record listed twice")
    pages = list(table.iterate(page_size=50))
    check(len(pages) >= 3 and sum(len(p) for p in pages) == len(records), "iterate(page_size=50)")
    few = table.all(fields=["Full Name"], max_records=7, sort=["-Full Name"])
    check(len(few) == 7 and all(set(r["fields"]) <= {"Full Name"} for r in few), "fields, maxRecords, sort")
    names = [r["fields"].get("Full Name", "") for r in few]
    check(names == sorted(names, key=str.lower, reverse=True), "sorted descending")

    rec = table.create({"Full Name": "Py Airtable", "Status": "new", "Lead ID": "py-1"})
    check(rec["id"].startswith("rec") and rec["fields"]["Full Name"] == "Py Airtable", "create()")
    got = table.get(rec["id"])
    check(got["fields"]["Lead ID"] == "py-1", "get()")
    upd = table.update(rec["id"], {"Email": "py@example.com", "Verified": True})
    check(upd["fields"]["Email"] == "py@example.com" and upd["fields"]["Full Name"] == "Py Airtable", "update() merges")
    found = table.first(formula=match({"Lead ID": "py-1"}))
    check(found is not None and found["id"] == rec["id"], "first(formula=match(...))")

    batch = table.batch_create([{"Full Name": f"Batch {i}", "Lead ID": f"py-b{i}"} for i in range(12)])
    check(len(batch) == 12, "batch_create() of 12 (split in requests of 10)")
    result = table.batch_upsert(
        [{"fields": {"Lead ID": "py-b0", "Status": "won"}}, {"fields": {"Lead ID": "py-new", "Full Name": "New"}}],
        key_fields=["Lead ID"],
    )
    check(len(result["createdRecords"]) == 1 and len(result["updatedRecords"]) == 1, "batch_upsert()")
    check(table.get(batch[0]["id"])["fields"]["Status"] == "won", "upsert updated the match")
    updated = table.batch_update([{"id": r["id"], "fields": {"Score": 5}} for r in batch[:3]])
    check(all(r["fields"]["Score"] == 5 for r in updated), "batch_update()")

    deleted = table.delete(rec["id"])
    check(deleted["deleted"] and deleted["id"] == rec["id"], "delete()")
    gone = table.batch_delete([r["id"] for r in batch] + [result["createdRecords"][0]])
    check(len(gone) == 13 and all(d["deleted"] for d in gone), "batch_delete() of 13")
    check(len(table.all()) == len(records), "back to the records we started with")
    try:
        table.get(rec["id"])
        check(False, "get() of a deleted record raises")
    except Exception as e:  # requests.HTTPError
        check("404" in str(e) or "403" in str(e), f"get() of a deleted record raises: {str(e)[:60]}")
    print("ALL OK")


if __name__ == "__main__":
    main()
