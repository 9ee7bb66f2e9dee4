"""Which MIMIC-III tables each task needs, and which asked tasks the given folder allows.

Every task needs the cohort tables (ICUSTAYS, ADMISSIONS, PATIENTS) and DIAGNOSES_ICD (the
reference puts no stay without a diagnosis in any task). ihm, decomp, los and pheno also need
the event tables, CHARTEVENTS and LABEVENTS: their samples are defined by observations in the
stay (mimic3-benchmarks) and their inputs are those observations. 30-day readmission needs
neither: its labels come from ADMISSIONS alone. It *uses* the events when both tables are
there (index stays with an observation in the ICU, the event features at discharge), so with
every table present its output is what it always was; without them its index stays are the
cohort stays with a known LOS and a diagnosis and its event features are empty windows (count
0, statistics NULL), which the manifest records (docs/tasks.md, "Missing tables").

The public MIMIC-III demo, for one, ships no CHARTEVENTS, no LABEVENTS (only a partial
extract under another name) and no INPUTEVENTS_CV: readmission is built there, the other
four tasks are named as not buildable with the tables they miss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from clinical_ml.io import DataError
from clinical_ml.mimic.files import locate_table

BASE_TABLES: tuple[str, ...] = ("ICUSTAYS", "ADMISSIONS", "PATIENTS", "DIAGNOSES_ICD")
EVENT_TABLES: tuple[str, ...] = ("CHARTEVENTS", "LABEVENTS")
REQUIRES: dict[str, tuple[str, ...]] = {
    "ihm": EVENT_TABLES, "decomp": EVENT_TABLES, "los": EVENT_TABLES, "pheno": EVENT_TABLES,
    "readmit": (),
}


@dataclass
class Plan:
    """The asked tasks split into those to build and those the folder does not allow."""
    build: tuple[str, ...]
    missing: dict[str, list[str]] = field(default_factory=dict)   # task -> tables it lacks
    events: bool = True            # CHARTEVENTS and LABEVENTS are loaded
    absent_tables: list[str] = field(default_factory=list)

    def manifest(self) -> dict:
        return {"built": list(self.build),
                "not_built": {t: {"missing_tables": m} for t, m in self.missing.items()},
                "events_loaded": self.events, "absent_tables": self.absent_tables}

    def groups(self) -> list[tuple[str, str]]:
        """(tasks, the tables they lack), one pair per distinct set of missing tables."""
        by: dict[tuple[str, ...], list[str]] = {}
        for t, m in self.missing.items():
            by.setdefault(tuple(m), []).append(t)
        return [(",".join(ts), ", ".join(m)) for m, ts in by.items()]


def _present(src: str, table: str) -> bool:
    try:
        locate_table(src, table)
    except DataError:
        return False
    return True


def plan(src: str, tasks: tuple[str, ...]) -> Plan:
    """Raise DataError when a cohort table is missing or no asked task can be built."""
    absent = [t for t in (*BASE_TABLES, *EVENT_TABLES) if not _present(src, t)]
    base = [t for t in BASE_TABLES if t in absent]
    if base:
        raise DataError(f"{src}: table(s) {', '.join(base)} not found; every task needs "
                        f"{', '.join(BASE_TABLES)} (expected TABLE.csv.gz or TABLE.csv)")
    missing = {t: [x for x in REQUIRES[t] if x in absent] for t in tasks}
    missing = {t: m for t, m in missing.items() if m}
    build = tuple(t for t in tasks if t not in missing)
    if not build:
        raise DataError(f"none of the asked tasks can be built from {src}: "
                        + "; ".join(f"{t} needs {', '.join(m)}" for t, m in missing.items())
                        + " (not found)")
    # every task's features come from the events: they are loaded whenever both tables exist
    events = not any(t in absent for t in EVENT_TABLES)
    return Plan(build, missing, events, absent)
