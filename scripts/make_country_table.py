"""Generate cultbench/profiles/countries.tsv from the 2015 Hofstede matrix.

For every row of ``hofstede-2015.tsv``: the matrix code, the name, ISO 3166-1 alpha-2 and alpha-3
codes where the row is a country, and aliases. ISO codes come from ``pycountry`` (needed only here,
not at run time: ``pip install pycountry``); rows whose matrix name pycountry cannot match are
resolved by hand below (``BY_HAND``), and rows that are regions or parts of a country get no code
(``NOT_A_COUNTRY``). The script stops if a row is in none of these, so a new row is checked by a
person. The table is committed; rerun after editing the matrix or the aliases:

    python scripts/make_country_table.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pycountry

PROFILES = Path(__file__).resolve().parent.parent / "cultbench" / "profiles"
MATRIX = PROFILES / "hofstede-2015.tsv"
OUT = PROFILES / "countries.tsv"
ALIAS_SEP = ";"  # ISO names contain commas ("Korea, Republic of")

# Matrix rows that are regions or parts of a country: no ISO code.
NOT_A_COUNTRY = {"AFE", "AFW", "ARA", "BEF", "BEN", "CAF", "GEE", "SAW", "SWF", "SWG"}

# Matrix code -> ISO alpha-3, checked by hand, for names pycountry.lookup does not match.
BY_HAND = {
    "BOS": "BIH",  # Bosnia
    "CZE": "CZE",  # Czech Rep
    "GBR": "GBR",  # Great Britain (the matrix row is the United Kingdom)
    "KOR": "KOR",  # Korea South
    "KYR": "KGZ",  # Kyrgyz Rep
    "MAC": "MKD",  # Macedonia Rep
    "RUS": "RUS",  # Russia
    "SLK": "SVK",  # Slovak Rep
    "TUR": "TUR",  # Turkey (ISO name: Türkiye)
    "USA": "USA",  # U.S.A.
}

# Aliases written by hand, besides ISO codes and pycountry's name, official name and common name.
EXTRA_ALIASES = {
    "AFE": ["East Africa"],
    "AFW": ["West Africa"],
    "ARA": ["Arab world"],
    "BEF": ["French Belgium", "Belgium Francophone", "Wallonia"],
    "BEN": ["Belgium Netherlands", "Belgium Dutch", "Belgium Flemish", "Flemish Belgium", "Flanders"],
    "BOS": ["Bosnia and Herzegovina", "Bosnia-Herzegovina"],
    "CAF": ["French Canada", "Canada Francophone"],
    "CHI": ["PRC", "People's Republic of China", "Mainland China"],
    "CZE": ["Czech Republic", "Czechia"],
    "GBR": ["UK", "Great Britain", "United Kingdom", "Britain"],
    "GEE": ["East Germany", "GDR"],
    "HOK": ["Hong Kong SAR"],
    "KOR": ["South Korea", "Korea", "Republic of Korea"],
    "KYR": ["Kyrgyzstan", "Kyrgyz Republic"],
    "MAC": ["Macedonia", "North Macedonia", "Republic of Macedonia"],
    "NET": ["Holland", "The Netherlands"],
    "RUS": ["Russian Federation"],
    "SAW": ["White South Africa"],
    "SLK": ["Slovakia", "Slovak Republic"],
    "SWF": ["French Switzerland", "Switzerland Romandy"],
    "SWG": ["German Switzerland"],
    "TRI": ["Trinidad & Tobago"],
    "TUR": ["Türkiye", "Turkiye"],
    "USA": ["US", "USA", "United States", "United States of America", "America"],
    "VIE": ["Viet Nam"],
}


def iso_country(ctr: str, name: str):
    if ctr in NOT_A_COUNTRY:
        return None
    if ctr in BY_HAND:
        return pycountry.countries.get(alpha_3=BY_HAND[ctr])
    try:
        return pycountry.countries.lookup(name)
    except LookupError:
        sys.exit(f"{ctr} {name!r}: pycountry cannot match it; add it to BY_HAND or NOT_A_COUNTRY")


def main() -> None:
    with MATRIX.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    table = []
    for row in rows:
        ctr, name = row["ctr"], row["country"]
        country = iso_country(ctr, name)
        aliases = list(EXTRA_ALIASES.get(ctr, []))
        if country is not None:
            for attr in ("name", "official_name", "common_name"):
                value = getattr(country, attr, None)
                if value:
                    aliases.append(value)
        seen = {name.casefold()}
        unique = []
        for alias in aliases:
            if alias.casefold() not in seen:
                seen.add(alias.casefold())
                unique.append(alias)
        table.append({
            "ctr": ctr,
            "name": name,
            "iso2": country.alpha_2 if country else "",
            "iso3": country.alpha_3 if country else "",
            "aliases": ALIAS_SEP.join(unique),
        })
        if country is not None and ctr not in BY_HAND and country.name != name:
            print(f"check: {ctr} {name!r} -> {country.alpha_3} {country.name!r}")
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ctr", "name", "iso2", "iso3", "aliases"],
                                delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {OUT} ({len(table)} rows, pycountry {pycountry.__version__ if hasattr(pycountry, '__version__') else ''})")


if __name__ == "__main__":
    main()
