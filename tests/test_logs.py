"""PHI-free logging: the shared filter masks what a careless call site might pass."""
from __future__ import annotations

import io
import logging

from clinical_ml import logs


def _capture():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.PhiFilter())
    log = logging.getLogger("test.phi")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, stream


def test_dates_are_masked():
    log, out = _capture()
    log.info("admitted %s, born 2101-03-04", "2150-07-21 13:45:00")
    text = out.getvalue()
    assert "2150-07-21" not in text and "2101-03-04" not in text
    assert text.count("<date>") == 2


def test_long_free_text_argument_replaced_by_length_and_hash():
    log, out = _capture()
    note = "Patient reports crushing chest pain radiating to the left arm. " * 3
    log.info("note: %s", note)
    text = out.getvalue()
    assert "crushing" not in text and f"len={len(note)}" in text


def test_registered_markers_are_redacted():
    log, out = _capture()
    logs.register_sensitive("ZZMARKERNAMEZZ")
    log.info("name ZZMARKERNAMEZZ seen")
    assert "ZZMARKERNAMEZZ" not in out.getvalue() and "<redacted>" in out.getvalue()


def test_counts_and_hashes_pass_through():
    log, out = _capture()
    log.info("wrote %d rows sha=%s", 1234, "ab12cd34")
    assert "wrote 1234 rows sha=ab12cd34" in out.getvalue()


def test_fingerprint_is_stable_and_opaque():
    assert logs.fingerprint(10006) == logs.fingerprint(10006)
    assert "10006" not in logs.fingerprint(10006)
