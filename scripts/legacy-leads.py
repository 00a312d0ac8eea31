#!/usr/bin/env python3
"""Writes a legacy lead file (the JSON arrays agents kept before leadcache) for the import
benchmark: N records with the old field names, about 5% duplicates of earlier records (same
email in other case, or a LinkedIn URL variant, or the same name at the same company with a
suffix), and about 0.5% invalid records (a bad email). Deterministic for a given seed.

    scripts/legacy-leads.py 100000 /tmp/legacy-100k.json [seed]
"""
import json
import random
import sys

FIRST = ["Ada", "Bo", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lena",
         "Mark", "Maria", "Nina", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik",
         "Wen", "Xavi", "Yara", "Zoe", "Sofia", "Liam", "Noah"]
LAST = ["Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Nakamura", "Silva",
        "Novak", "Berg", "Costa", "Fischer", "Moreau", "Olsen", "Petrov", "Quinn", "Reyes"]
STEMS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
         "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Aperture", "Pied Piper", "Gringotts"]
SUFFIX = ["Inc", "LLC", "Ltd", "GmbH", "SA", ""]
STATUS = ["new", "scraped", "verified", "enriched", "contacted", "replied", "qualified", "lost"]


def main():
    n = int(sys.argv[1])
    out = sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    records = []
    for i in range(n):
        if records and rng.random() < 0.05:
            base = dict(rng.choice(records[-5000:]))
            how = rng.randrange(3)
            if how == 0 and base.get("email"):
                base["email"] = " " + base["email"].upper() + " "
                base.pop("linkedin_url", None)
            elif how == 1 and base.get("linkedin_url"):
                base["linkedin_url"] = base["linkedin_url"].replace("https://www.", "http://de.") + "/?trk=x"
                base.pop("email", None)
            else:
                base.pop("email", None)
                base.pop("linkedin_url", None)
            base["title"] = rng.choice(["CTO", "VP Sales", "Founder", None])
            records.append(base)
            continue
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = f"{rng.choice(STEMS)} {i % 997} {rng.choice(SUFFIX)}".strip()
        rec = {
            "name": f"{first} {last} {i}",
            "company": company,
            "email": f"{first.lower()}.{i}@example{i % 50}.com",
            "linkedin_url": f"https://www.linkedin.com/in/{first.lower()}-{last.lower()}-{i}",
            "title": rng.choice(["CEO", "CTO", "Head of Growth", "Engineer", "Founder"]),
            "location": rng.choice(["Berlin", "Paris", "Austin", "Lisbon", "Tokyo"]),
            "industry": rng.choice(["Software", "Retail", "Finance", "Health"]),
            "status": rng.choice(STATUS),
            "source": rng.choice(["linkedin", "referral", "website"]),
            "score": rng.randrange(0, 100),
        }
        if rng.random() < 0.005:
            rec["email"] = "not-an-email"
        records.append(rec)
    with open(out, "w") as f:
        json.dump(records, f)


if __name__ == "__main__":
    main()
