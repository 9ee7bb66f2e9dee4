"""One PHI-free logging setup for every step script and the server.

Rules (HIPAA minimum-necessary, enforced here rather than hoped for at each call site):
- log counts, ids of runs, content hashes, durations: never note text, names, dates of birth,
  free-text values or request bodies;
- ``get_logger`` returns a normal ``logging.Logger`` whose handler passes every record through
  ``PhiFilter``, which masks anything that looks like a date, a long free-text argument or a
  registered marker (patient-level strings a step knows it handled), so a slip at a call site
  does not become a leak;
- use ``fingerprint(value)`` when a log line needs to refer to a patient or note: a salted,
  truncated hash that is stable within one run and useless outside it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from typing import Any

_CONFIGURED = False
_SALT = os.environ.get("CLINICAL_ML_LOG_SALT", "") or os.urandom(8).hex()
_DATE = re.compile(r"\b(19|20|21|22)\d\d[-/](0?[1-9]|1[0-2])[-/](0?[1-9]|[12]\d|3[01])([ T]\d\d:\d\d(:\d\d)?)?\b")
_MAX_ARG = 120  # a longer string argument is free text: replaced by its length and hash
_sensitive: set[str] = set()


def fingerprint(value: Any) -> str:
    """Salted short hash for referring to a patient/note in a log line without revealing it."""
    return hashlib.sha256(f"{_SALT}:{value}".encode()).hexdigest()[:12]


def register_sensitive(*values: str) -> None:
    """Strings that must never appear in logs (e.g. names a step just read); masked if seen."""
    _sensitive.update(v for v in values if v and len(v) >= 4)


def scrub(text: str) -> str:
    text = _DATE.sub("<date>", text)
    for s in _sensitive:
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


def _scrub_arg(a: Any) -> Any:
    if isinstance(a, str) and len(a) > _MAX_ARG:
        return f"<text len={len(a)} sha={fingerprint(a)}>"
    return a


class PhiFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg = str(record.msg) % tuple(_scrub_arg(a) for a in args)
            record.args = None
        record.msg = scrub(str(record.msg))
        if record.exc_info and record.exc_info[1] is not None:
            # keep the exception type and traceback shape, drop message text that may hold data
            record.exc_text = None
        return True


def setup(level: str | int | None = None, stream=None) -> None:
    """Configure the root logger once: one line per record, PHI filter on the handler."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    level = level or os.environ.get("CLINICAL_ML_LOG_LEVEL", "INFO")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhiFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _CONFIGURED = True


def get_logger(name: str) -> logging.Logger:
    setup()
    return logging.getLogger(name)
