"""A large seed looks like an org, not like a few hundred people entered a thousand times."""

from __future__ import annotations

from collections import Counter

from sandbox.hubspot.portal import Portal
from sandbox.salesforce.duplicates import person_name
from sandbox.salesforce.org import Org
from sandbox.seed import SPREAD_FROM, SeedSizes, seed


def _twin_share(leads: int) -> float:
    """The share of live leads that have a twin under the standard rule's name + company."""
    org, portal = Org(), Portal(search_lag=0.0, default_lifecycle=False, calculated_touch=False)
    seed(org, portal, 7, SeedSizes(leads=leads, contacts=0, accounts=1, opportunities=0,
                                   hubspot_only_contacts=0))
    keys = Counter((person_name(r), " ".join(str(r.get("Company")).split()).casefold())
                   for r in org.records["Lead"].values() if not r.get("IsConverted"))
    return sum(n for n in keys.values() if n > 1) / sum(keys.values())


def test_a_large_seed_has_few_duplicate_rule_twins() -> None:
    # 728 names x 120 companies: at SPREAD_FROM leads, the small pools would make many twins
    assert _twin_share(SPREAD_FROM) < 0.01


def test_a_small_seed_keeps_its_pools() -> None:
    # the demo's and the tests' seeds stay as they were: twins are part of their story
    assert _twin_share(SPREAD_FROM - 1) > 0.03
