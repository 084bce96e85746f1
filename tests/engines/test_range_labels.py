"""labels.csv over frame ranges: what streamer label writes is what the data sets read back."""

from __future__ import annotations

import os

import pytest

from engines.datasets.range_labels import RangeLabel, read_range_labels, runs, write_range_labels

CLASSES = ("head", "spine", "thorax")


def test_runs_merge_consecutive_frames_with_the_same_labels_only():
    per_frame = {0: (1, 0, 0), 1: (1, 0, 0), 2: (1, 1, 0), 4: (1, 1, 0), 5: (0, 0, 0)}
    assert runs(per_frame) == [(0, 1, (1, 0, 0)), (2, 2, (1, 1, 0)), (4, 4, (1, 1, 0)),
                               (5, 5, (0, 0, 0))]  # 3 unlabelled: 2 and 4 stay apart


def test_write_then_read_is_the_same_rows(tmp_path):
    rows = [RangeLabel("a/loop1.dcm", 0, 9, (1, 0, 0)), RangeLabel("loop2.dcm", 4, 4, (0, 1, 1)),
            RangeLabel("loop3.dcm", None, None, (0, 0, 0))]
    path = tmp_path / "labels.csv"
    write_range_labels(str(path), CLASSES, rows)
    assert path.read_text().splitlines()[:2] == ["file,frames,head,spine,thorax",
                                                 "a/loop1.dcm,0-9,1,0,0"]
    assert read_range_labels(str(path)) == (CLASSES, rows)
    assert os.listdir(tmp_path) == ["labels.csv"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "labels.csv"
    write_range_labels(str(path), CLASSES, [RangeLabel("x.dcm", 0, 1, (1, 0, 0))])
    before = path.read_bytes()

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_range_labels(str(path), CLASSES, [RangeLabel("x.dcm", 0, 5, (0, 1, 0))])
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["labels.csv"]


@pytest.mark.parametrize("body, message", [
    ("file,frames,head\nx.dcm,3-1,1\n", ":2: frames 3-1"),
    ("file,frames,head\nx.dcm,a,1\n", ":2: frames must be"),
    ("file,frames,head\nx.dcm,1,2\n", ":2: labels must be 0 or 1"),
    ("file,frames,head\n../x.dcm,1,1\n", ":2: file must be a path inside"),
    ("file,frames,head,head\nx.dcm,1,1,0\n", "distinct"),
    ("name,head\nx.dcm,1\n", "header must be"),
])
def test_bad_rows_are_one_line_naming_file_and_line(tmp_path, body, message):
    path = tmp_path / "labels.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as err:
        read_range_labels(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_rewrite_keeps_the_mode_a_plain_write_gives(tmp_path):
    """The temporary file is made 0600; the labels a colleague opens next must not be."""
    path = tmp_path / "labels.csv"
    umask = os.umask(0o022)
    os.umask(umask)  # the process's own, as open() applies it
    write_range_labels(str(path), CLASSES, [RangeLabel("x.dcm", 0, 1, (1, 0, 0))])
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask != 0o600
