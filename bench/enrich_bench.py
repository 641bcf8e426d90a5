"""Enrichment speed: 100k synthetic scan records, offline (no DNS, no traffic).

    .venv/bin/python bench/enrich_bench.py [N]

Prints records/s for iptocc only, with a constituency file, and with mmdb country + ASN files
(written with mmdb-writer, the test extra), for enrich_batch and per-record enrich.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]  # netaddr ships no type hints

from exwatch.enrich import Enricher

DOMAINS = [f"org{i}.example" for i in range(2000)] + [
    "politie.nl",
    "health.fgov.be",
    "gemeente-x.nl",
    "uni-bonn.de",
    "ac.uk",
    "chu-lille.fr",
]


def make_records(n: int, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for _ in range(n):
        ip = ".".join(str(rng.randint(1, 223 if i == 0 else 254)) for i in range(4))
        domain = rng.choice(DOMAINS)
        records.append(
            {
                "ip": ip,
                "port": 443,
                "hostname": None,
                "tls": {
                    "subject_cn": f"mail.{domain}",
                    "san": [f"mail.{domain}", f"autodiscover.{domain}", "EXCH01"],
                    "subject": f"CN=mail.{domain},O=Org {domain},C=BE",
                },
                "ntlm": {
                    "dns_domain": f"corp.{domain.split('.')[0]}.local",
                    "dns_tree": f"{domain.split('.')[0]}.local",
                },
            }
        )
    return records


def write_constituency(path: Path, rng: random.Random) -> None:
    lines = ["match,organisation,sector,country,contact,language"]
    nets = rng.sample([(a, b) for a in range(1, 224) for b in range(256)], 5000)
    for i, (a, b) in enumerate(nets):
        lines.append(f"{a}.{b}.0.0/16,Net {i},energy,BE,,nl")
    for i in range(0, 2000, 2):
        lines.append(f"org{i}.example,Org {i},health,NL,,nl")
    for i in range(500):
        lines.append(f"AS{64500 + i},Hoster {i},digital-infrastructure,,,")
    path.write_text("\n".join(lines) + "\n")


def write_mmdbs(folder: Path) -> tuple[Path, Path]:
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for first in range(1, 224):
        net = IPSet([f"{first}.0.0.0/8"])
        country.insert_network(net, {"country": {"iso_code": "BE"}})
        asn.insert_network(
            net,
            {
                "autonomous_system_number": 64500 + first,
                "autonomous_system_organization": f"AS {first}",
            },
        )
    country.to_db_file(str(folder / "country.mmdb"))
    asn.to_db_file(str(folder / "asn.mmdb"))
    return folder / "country.mmdb", folder / "asn.mmdb"


def timed(label: str, enricher: Enricher, records: list[dict[str, Any]], batch: bool) -> None:
    start = time.perf_counter()
    if batch:
        for i in range(0, len(records), 10_000):
            enricher.enrich_batch(records[i : i + 10_000])
    else:
        for record in records:
            enricher.enrich(record)
    took = time.perf_counter() - start
    mode = "enrich_batch" if batch else "enrich      "
    print(
        f"{label:<34} {mode} {len(records):>7} records {took:6.2f} s {len(records) / took:>9,.0f}/s"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(7)
    records = make_records(n, rng)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_constituency(folder / "constituency.csv", rng)
        country, asn = write_mmdbs(folder)
        start = time.perf_counter()
        with_const = Enricher(constituency=folder / "constituency.csv", auto_detect=False)
        print(f"constituency load (6500 entries): {time.perf_counter() - start:.3f} s")
        plain = Enricher(auto_detect=False)
        full = Enricher(
            geo_db=country, asn_db=asn, constituency=folder / "constituency.csv", auto_detect=False
        )
        for label, enricher in (
            ("iptocc + rules", plain),
            ("iptocc + constituency", with_const),
            ("mmdb country+ASN + constituency", full),
        ):
            timed(label, enricher, records, batch=True)
        timed("iptocc + constituency", with_const, records, batch=False)


if __name__ == "__main__":
    main()
