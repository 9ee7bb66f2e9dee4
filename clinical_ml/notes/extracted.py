"""The ``extracted/`` parts of extract-notes (docs/contracts.md "Notes"): note ids, their shard,
and the streaming merge that writes a part from its checkpoint chunks.

A part is one JSON line per note, sorted by note id. Its chunks are written sorted too, so the
part is a k-way merge of sorted files (``heapq.merge``): memory holds one line per open chunk,
not the shard's annotations (before, every line of the shard was held in a dict to sort it:
ExtractNotes' peak grew 69% from 1/16 to 1/2 of the release). More chunks than ``FAN_IN`` are
merged in rounds through temporary files, so a shard of two million notes never opens more
than ``FAN_IN`` files at once.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from clinical_ml.io import DataError, atomic_path, iter_jsonl

FAN_IN = 128  # chunks merged at once (open files)


def id_key(v: Any) -> tuple:
    """Sort/dedup key of a note id (ROW_IDs are ints; anything else sorts after, as text)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (0, v)
    return (1, str(v))


def shard_of_note(note_id: Any, num_shards: int) -> int:
    """Stable shard of a note id: same on every machine, run and Python version."""
    if num_shards <= 1:
        return 0
    h = hashlib.sha256(f"note:{note_id}".encode()).hexdigest()[:12]
    return int(h, 16) % num_shards


def part_name(shard: int) -> str:
    return f"part-{int(shard):05d}.jsonl"


def read_part_lines(path: Path) -> Iterator[tuple[tuple, str]]:
    """(id key, line) of each line of an extracted part (or chunk), newline-terminated."""
    for _, obj, line in iter_jsonl(path, "delete the file and rerun the shard"):
        yield id_key(obj.get("id")), line if line.endswith("\n") else line + "\n"


def sorted_lines(lines: Iterable[tuple[tuple, str]]) -> list[str]:
    """A chunk's lines in id order (how chunks are written)."""
    return [line for _, line in sorted(lines, key=lambda kl: kl[0])]


def _checked(path: Path) -> Iterator[tuple[tuple, str]]:
    """``read_part_lines``, refusing a file that is not in id order (a merge would be wrong)."""
    last = None
    for key, line in read_part_lines(path):
        if last is not None and key < last:
            raise DataError(f"{path}: lines are not sorted by note id (a chunk of an older "
                            "extract-notes?); delete it and rerun the shard")
        last = key
        yield key, line


def merge_sorted(sources: list[Path], out: Path, keep: Callable[[tuple], bool] = lambda k: True,
                 fan_in: int = FAN_IN) -> int:
    """Write the id-sorted union of ``sources`` (each sorted) to ``out`` atomically: each id
    once (the first source holding it wins), only the ids ``keep`` accepts. Returns the lines
    written."""
    sources = list(sources)
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=out.parent) as scratch:
        level = 0
        while len(sources) > fan_in:  # merge rounds: never more than fan_in open files
            merged = []
            for g in range(0, len(sources), fan_in):
                step = Path(scratch) / f"round{level}-{g // fan_in:06d}.jsonl"
                _merge_into(sources[g:g + fan_in], step, lambda k: True)
                merged.append(step)
            sources, level = merged, level + 1
        return _merge_into(sources, out, keep)


def _merge_into(sources: list[Path], out: Path, keep: Callable[[tuple], bool]) -> int:
    n = 0
    with ExitStack() as stack, atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        # the source index breaks ties, so the first source's line of an id comes first
        streams = [((key, i, line) for key, line in _checked(p)) for i, p in enumerate(sources)]
        stack.callback(lambda: [s.close() for s in streams])
        for key, group in itertools.groupby(heapq.merge(*streams), key=lambda t: t[0]):
            if keep(key):
                f.write(next(group)[2])
                n += 1
    return n
