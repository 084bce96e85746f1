"""The labels being edited: per loop, per frame, a 0/1 vector over the classes or unlabelled;
the edits (toggle a region from a frame on, accept the model's suggestion) with undo; and the
labels.csv they are read from and written to (engines.datasets.range_labels).

Toggle rule: key k at frame f flips region k on frame f and on every frame after it whose value
of region k equals f's (unlabelled frames count as off), stopping before the first frame where
region k already changes, or at the loop's end. Every frame it covers becomes labelled; a class
never set on a labelled frame is 0 (not in view). Accept: the current frame's suggestion becomes
the label of the run of consecutive frames around it with the same suggestion.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence

from engines.datasets.range_labels import RangeLabel, read_range_labels, runs, write_range_labels
from streamer.errors import UserError

Vector = tuple[int, ...]
UNDO_DEPTH = 500  # edits that can be undone (each keeps its loop's runs before the edit)


class LabelSession:
    def __init__(self, classes: Sequence[str], counts: Mapping[str, int],
                 labels: Mapping[str, Mapping[int, Vector]] | None = None, readonly: str = ""):
        """``counts``: each loop's frame count, in loop order; ``readonly``: why edits are refused
        ("" when they are allowed)."""
        self.classes, self.counts, self.readonly = tuple(classes), dict(counts), readonly
        self.frames: dict[str, dict[int, Vector]] = {
            name: dict((labels or {}).get(name, {})) for name in self.counts}
        self._undo: collections.deque = collections.deque(maxlen=UNDO_DEPTH)

    # -- reading ------------------------------------------------------------------------------
    def label(self, loop: str, frame: int) -> Vector | None:
        return self.frames[loop].get(frame)

    def runs(self, loop: str) -> list[tuple[int, int, Vector]]:
        return runs(self.frames[loop])

    @property
    def undo_depth(self) -> int:
        return len(self._undo)

    # -- edits --------------------------------------------------------------------------------
    def toggle(self, loop: str, frame: int, cls: int) -> tuple[int, int]:
        """Flip region ``cls`` from ``frame`` on (the rule above); the frames changed."""
        self._check(loop, frame)
        if not 0 <= cls < len(self.classes):
            raise UserError(f"class {cls} is not one of 0..{len(self.classes) - 1}")
        per, n = self.frames[loop], self.counts[loop]
        zero = (0,) * len(self.classes)
        was = per.get(frame, zero)[cls]
        last = frame
        while last + 1 < n and per.get(last + 1, zero)[cls] == was:
            last += 1
        self._remember(loop)
        for i in range(frame, last + 1):
            v = list(per.get(i, zero))
            v[cls] = 1 - was
            per[i] = tuple(v)
        return frame, last

    def accept(self, loop: str, frame: int, suggested: Sequence[Vector | None]) -> tuple[int, int]:
        """The suggestion at ``frame`` (``suggested``: one vector per frame scored so far, None
        where a frame could not be) labels its run of equal suggestions; the frames changed."""
        self._check(loop, frame)
        if frame >= len(suggested) or suggested[frame] is None:
            raise UserError(f"{loop} frame {frame} has no suggestion yet (the model has scored "
                            f"{len(suggested)} of {self.counts[loop]} frames)")
        s = tuple(int(v) for v in suggested[frame])
        if len(s) != len(self.classes):
            raise UserError(f"a suggestion has {len(s)} classes, the labels {len(self.classes)}")
        first, last = frame, frame
        while first > 0 and suggested[first - 1] is not None and tuple(suggested[first - 1]) == s:
            first -= 1
        while (last + 1 < len(suggested) and suggested[last + 1] is not None
               and tuple(suggested[last + 1]) == s):
            last += 1
        self._remember(loop)
        per = self.frames[loop]
        for i in range(first, last + 1):
            per[i] = s
        return first, last

    def undo(self) -> str | None:
        """Undo the last edit; the loop it changed (None: nothing to undo)."""
        if not self._undo:
            return None
        loop, before = self._undo.pop()
        self.frames[loop] = {i: v for a, b, v in before for i in range(a, b + 1)}
        return loop

    def _check(self, loop: str, frame: int) -> None:
        if self.readonly:
            raise UserError(self.readonly)
        if loop not in self.counts:
            raise UserError(f"no loop {loop!r}")
        if not 0 <= frame < self.counts[loop]:
            raise UserError(f"{loop} has frames 0..{self.counts[loop] - 1}, not {frame}")

    def _remember(self, loop: str) -> None:
        self._undo.append((loop, self.runs(loop)))

    # -- writing ------------------------------------------------------------------------------
    def rows(self, columns: Sequence[str]) -> list[RangeLabel]:
        """One row per run of equal labels, loops in order, ``columns`` the file's class order;
        frames never labelled are not written."""
        index = [self.classes.index(c) for c in columns]
        return [RangeLabel(loop, a, b, tuple(v[i] for i in index))
                for loop in self.counts for a, b, v in self.runs(loop)]


class LabelFile:
    """labels.csv of a folder: read into a session, written whole after every edit (atomically).
    Rows naming files the session does not hold (a single loop of a folder) are kept as they are."""

    def __init__(self, path: str, columns: Sequence[str], kept: Sequence[RangeLabel] = ()):
        self.path, self.columns, self.kept = path, tuple(columns), list(kept)
        self.writes = 0

    @classmethod
    def open(cls, path: str, classes: Sequence[str], counts: Mapping[str, int],
             whole_folder: bool) -> tuple[LabelFile, dict[str, dict[int, Vector]]]:
        """The file and the labels it holds for the loops in ``counts``; a class the model lacks,
        a file that is not a loop here, a range past a loop's end or a frame labelled twice is one
        line naming the file (and line)."""
        folder = os.path.dirname(os.path.abspath(path))
        if not os.access(folder, os.W_OK):
            raise UserError(f"cannot write labels in {folder} (not writable)")
        if not os.path.exists(path):
            return cls(path, classes), {}
        try:
            columns, rows = read_range_labels(path)
        except OSError as exc:
            raise UserError(f"{path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # it names the file and line
            raise UserError(str(exc)) from None
        unknown = [c for c in columns if c not in classes]
        if unknown:
            raise UserError(f"{path}: class {unknown[0]!r} is not one of the model's classes "
                            f"({', '.join(classes)}); label with the model that has it (--model)")
        missing = [c for c in classes if c not in columns]
        if missing:
            raise UserError(f"{path}: no column for the model's class {missing[0]!r}; add it (0 or "
                            "1 on every row) or label with the model the file was made for")
        index = [columns.index(c) for c in classes]
        labels: dict[str, dict[int, Vector]] = {}
        kept, seen = [], {}
        for row in rows:
            where = row.where(path)
            if row.file not in counts:
                if whole_folder:
                    raise UserError(f"{where}: {row.file!r} is not a loop in {folder}")
                kept.append(row)
                continue
            n = counts[row.file]
            if row.last is not None and row.last >= n:
                raise UserError(f"{where}: frames {row.text()} of {row.file} run past its last "
                                f"frame {n - 1}")
            per = labels.setdefault(row.file, {})
            for i in row.frames(n):
                if i in per:
                    raise UserError(f"{where}: frame {i} of {row.file} is labelled twice (also "
                                    f"line {seen[row.file, i]})")
                per[i] = tuple(row.labels[j] for j in index)
                seen[row.file, i] = row.line
        return cls(path, columns, kept), labels

    def write(self, session: LabelSession) -> None:
        write_range_labels(self.path, self.columns, session.rows(self.columns) + self.kept)
        self.writes += 1


def header_labels(classes: Sequence[str], loops) -> dict[str, dict[int, Vector]]:
    """fetalnav: each frame's header labels as vectors over ``classes`` (names compared without
    case); a label that is not a class is one line naming the file."""
    lower = [c.lower() for c in classes]
    out: dict[str, dict[int, Vector]] = {}
    for info in loops:
        per = out.setdefault(info.name, {})
        for i, (path, names) in enumerate(zip(info.paths, info.header_labels, strict=True)):
            v = [0] * len(classes)
            for name in names:
                if name.lower() not in lower:
                    raise UserError(f"{path}: label {name!r} is not one of the model's classes "
                                    f"({', '.join(classes)}); open it with the model that has it "
                                    "(--model)")
                v[lower.index(name.lower())] = 1
            per[i] = tuple(v)
    return out
