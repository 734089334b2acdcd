"""Code lists the hub interprets (beyond what the Avro enums already restrict)."""

from __future__ import annotations

# SSB groups outcomes one year after the programme in three; the contract's finer list of main
# activities at exit maps onto them (DOMAIN.md: the list itself is unconfirmed, so it lives here).
EMPLOYED_OR_EDUCATION = "employed_or_education"
UNEMPLOYED_OR_MEASURE = "unemployed_or_measure"
OTHER_OR_UNKNOWN = "other_or_unknown"

MAIN_ACTIVITY_GROUP = {
    "EMPLOYED_FULL_TIME": EMPLOYED_OR_EDUCATION,
    "EMPLOYED_PART_TIME": EMPLOYED_OR_EDUCATION,
    "SELF_EMPLOYED": EMPLOYED_OR_EDUCATION,
    "EDUCATION_PRIMARY_SECONDARY": EMPLOYED_OR_EDUCATION,
    "EDUCATION_HIGHER": EMPLOYED_OR_EDUCATION,
    "EMPLOYED_AND_EDUCATION": EMPLOYED_OR_EDUCATION,
    "UNEMPLOYED": UNEMPLOYED_OR_MEASURE,
    "LABOUR_MARKET_MEASURE": UNEMPLOYED_OR_MEASURE,
    "PARENTAL_LEAVE": OTHER_OR_UNKNOWN,
    "HEALTH_REASONS": OTHER_OR_UNKNOWN,
    "OTHER": OTHER_OR_UNKNOWN,
    "UNKNOWN": OTHER_OR_UNKNOWN,
}


def main_activity_group(main_activity: str | None) -> str:
    return MAIN_ACTIVITY_GROUP.get(main_activity or "UNKNOWN", OTHER_OR_UNKNOWN)
