"""Generative windows: a note cut into consecutive <= N-token pieces at sentence breaks, gold
sliced with them, and the windows' records merged back onto note offsets."""
from __future__ import annotations

import pytest

from clinical_ml.extraction.chunks import chunk_bounds, slice_doc


def _word_starts(text: str) -> list[int]:
    """One token per word (a stand-in tokenizer: offsets are all chunk_bounds reads)."""
    import re

    return [m.start() for m in re.finditer(r"\S+", text)]


NOTE = ("Patient admitted with chest pain. Started aspirin 81 mg daily. Troponin was negative. "
        "Echocardiogram showed normal function. Discharged home on aspirin.")


@pytest.mark.parametrize("n", [1, 3, 5, 8, 100])
def test_windows_cover_the_note_in_order_within_the_budget(n):
    starts = _word_starts(NOTE)
    bounds = chunk_bounds(NOTE, starts, n)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(NOTE)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gap, no overlap
    for a, b in bounds:
        assert sum(a <= s < b for s in starts) <= n
    assert "".join(NOTE[a:b] for a, b in bounds) == NOTE


def test_windows_end_at_sentence_breaks_and_never_inside_a_kept_span():
    starts = _word_starts(NOTE)
    bounds = chunk_bounds(NOTE, starts, 8)
    # every cut falls after a sentence's full stop when one is in the window's second half
    assert [NOTE[a:b].rstrip()[-1] for a, b in bounds] == ["."] * len(bounds)
    # a span that would straddle a word cut moves the cut
    text = "one two three four five six seven eight nine ten"
    ws = _word_starts(text)
    cut = chunk_bounds(text, ws, 4)[0][1]
    assert text[:cut] == "one two three four "
    keep = [(text.index("four"), text.index("five") + 4)]
    assert chunk_bounds(text, ws, 4, keep)[0][1] == text.index("four")
    # no break at all (one long token run): cut at the token boundary
    assert chunk_bounds("abcdefgh", [0, 2, 4, 6], 2) == [(0, 4), (4, 8)]
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_bounds(NOTE, starts, 0)


def test_slice_doc_keeps_the_gold_inside_with_offsets_and_relations_remapped():
    text = "Aspirin 81 mg daily. Fever noted."
    ents = [{"start": 0, "end": 7, "label": "MEDICATION", "text": "Aspirin", "negated": False},
            {"start": 8, "end": 13, "label": "DOSE", "text": "81 mg", "negated": False},
            {"start": 21, "end": 26, "label": "PROBLEM", "text": "Fever", "negated": False}]
    doc = {"id": "d", "text": text, "entities": ents, "relations": [{"type": "DOSE_OF", "head": 1, "tail": 0}]}
    first, second = slice_doc(doc, 0, 21), slice_doc(doc, 21, len(text))
    assert [e["text"] for e in first["entities"]] == ["Aspirin", "81 mg"]
    assert first["relations"] == [{"type": "DOSE_OF", "head": 1, "tail": 0}]
    assert second["entities"][0]["start"] == 0 and second["relations"] == []
    for piece in (first, second):  # offsets round-trip onto the piece
        assert all(piece["text"][e["start"]:e["end"]] == e["text"] for e in piece["entities"])
    # a relation whose end lies outside the piece is dropped, not left dangling
    assert slice_doc(doc, 5, 21)["relations"] == []


@pytest.fixture(scope="module")
def ext(tiny_llama):
    from clinical_ml.extraction.generative import GenConfig, build_generative

    return build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=512, max_target_tokens=128,
                                                       max_new_tokens=8, chunk_tokens=12))


def test_training_pairs_one_per_window_with_the_gold_inside_it(ext):
    import json

    from clinical_ml.notes.schema import record_from_annotations

    text = ("Started aspirin for the headache today. " * 3) + "Chest x-ray was clear."
    ents = []
    for k in range(3):
        base = k * len("Started aspirin for the headache today. ")
        ents.append({"start": base + 8, "end": base + 15, "label": "MEDICATION", "text": "aspirin", "negated": False})
    xray = text.index("Chest x-ray")
    ents.append({"start": xray, "end": xray + 11, "label": "TEST", "text": "Chest x-ray", "negated": False})
    doc = {"id": "d", "text": text, "entities": ents, "relations": [], "record": record_from_annotations(ents, [])}
    windows = ext.windows(text, [(e["start"], e["end"]) for e in ents])
    pairs = ext.training_pairs(doc)
    assert len(windows) > 1 and len(pairs) == len(windows)
    targets = [json.loads(ext.tokenizer.decode(t, skip_special_tokens=True).replace(" ", "")) for _, t in pairs]
    # the test appears in the last window's target only, aspirin in every window that holds it
    assert [bool(t["tests"]) for t in targets] == [False] * (len(targets) - 1) + [True]
    assert sum(bool(t["medications"]) for t in targets) == sum("aspirin" in text[a:b] for a, b in windows)


def test_window_records_merge_onto_note_offsets(ext):
    text = "Aspirin 81 mg daily. Fever noted."
    out = ext._merge(text, [(0, text[:21], '{"medications":[{"name":"aspirin","dose":"81 mg"}]}'),
                            (21, text[21:], '{"problems":[{"name":"fever","negated":true}]}')])
    assert [(text[e["start"]:e["end"]], e["label"]) for e in out["entities"]] == [
        ("Aspirin", "MEDICATION"), ("81 mg", "DOSE"), ("Fever", "PROBLEM")]
    assert out["relations"] == [{"type": "DOSE_OF", "head": 1, "tail": 0}]
    assert out["record"]["medications"][0]["dose"] == "81 mg" and out["record"]["problems"][0]["negated"]
    assert out["valid_json"] and not out["repaired"]
    # one window's broken JSON makes the note's record invalid (reported, not hidden)
    bad = ext._merge(text, [(0, text[:21], '{"medications":[{"name":"aspirin"},{"name":"asp'), (21, text[21:], "{}")])
    assert not bad["valid_json"] and bad["repaired"]
    assert [e["text"] for e in bad["entities"]] == ["Aspirin"]


def test_chunked_extract_reads_every_window(ext):
    text = "Started aspirin for the headache today. " * 6
    windows = ext.windows(text)
    assert len(windows) > 2
    [res] = ext.extract([text])
    # a random-init model: its spans may be anything found in the note, but on note offsets
    assert all(text[e["start"]:e["end"]] == e["text"] for e in res["entities"])
    n_prompt = sum(len(ext.tokenizer(ext.prompt(text[a:b]), add_special_tokens=False)["input_ids"])
                   for a, b in windows)
    assert res["prompt_tokens"] == n_prompt
