"""streamer label's state: the toggle rule, accepting a suggestion, undo, and labels.csv written
as runs, read back to the same state, refused in one line when it does not fit the loops."""

from __future__ import annotations

import pytest

from streamer.errors import UserError
from streamer.labeling.session import LabelFile, LabelSession

CLASSES = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
HEAD, SPINE = 0, 1


def v(*on: int) -> tuple[int, ...]:
    return tuple(int(i in on) for i in range(len(CLASSES)))


def session(n: int = 20, loops=("a.dcm",), labels=None) -> LabelSession:
    return LabelSession(CLASSES, {name: n for name in loops}, labels)


def test_a_toggle_turns_a_region_on_from_here_until_it_already_changes():
    s = session()
    assert s.toggle("a.dcm", 5, HEAD) == (5, 19)  # nothing labelled: to the loop's end
    assert s.runs("a.dcm") == [(5, 19, v(HEAD))]
    assert s.toggle("a.dcm", 12, HEAD) == (12, 19)  # head is on from 5: off from 12 on
    assert s.runs("a.dcm") == [(5, 11, v(HEAD)), (12, 19, v())]
    assert s.toggle("a.dcm", 8, SPINE) == (8, 19)  # spine is off everywhere labelled
    assert s.runs("a.dcm") == [(5, 7, v(HEAD)), (8, 11, v(HEAD, SPINE)), (12, 19, v(SPINE))]
    # before the labelled stretch: head off (unlabelled counts as off) until frame 5, where
    # head already changes; the frames it covers become labelled
    assert s.toggle("a.dcm", 2, HEAD) == (2, 4)
    assert s.runs("a.dcm") == [(2, 7, v(HEAD)), (8, 11, v(HEAD, SPINE)), (12, 19, v(SPINE))]
    assert s.label("a.dcm", 0) is None and s.label("a.dcm", 1) is None  # never touched


def test_a_toggle_inside_a_region_ends_it_there():
    s = session()
    s.toggle("a.dcm", 0, HEAD)
    s.toggle("a.dcm", 10, HEAD)
    assert s.toggle("a.dcm", 4, HEAD) == (4, 9)  # head on 0-9: off from 4, up to 10
    assert s.runs("a.dcm") == [(0, 3, v(HEAD)), (4, 19, v())]


def test_accept_labels_the_run_of_equal_suggestions_around_the_frame():
    s = session(10)
    s.toggle("a.dcm", 0, SPINE)  # a label the suggestion replaces where it is accepted
    suggested = [v(HEAD)] * 3 + [v(HEAD, SPINE)] * 4 + [None] + [v(HEAD, SPINE)] * 2
    assert s.accept("a.dcm", 4, suggested) == (3, 6)  # the run stops at the unscored frame 7
    assert s.runs("a.dcm") == [(0, 2, v(SPINE)), (3, 6, v(HEAD, SPINE)), (7, 9, v(SPINE))]
    with pytest.raises(UserError, match="frame 7 has no suggestion yet"):
        s.accept("a.dcm", 7, suggested)
    with pytest.raises(UserError, match="frame 9 has no suggestion yet .*scored 5 of 10"):
        s.accept("a.dcm", 9, suggested[:5])  # not scored so far


def test_undo_takes_back_each_edit_in_turn():
    s = session(10, loops=("a.dcm", "b.dcm"))
    s.toggle("a.dcm", 2, HEAD)
    s.toggle("b.dcm", 0, SPINE)
    s.toggle("a.dcm", 5, HEAD)
    assert s.undo() == "a.dcm" and s.runs("a.dcm") == [(2, 9, v(HEAD))]
    assert s.undo() == "b.dcm" and s.runs("b.dcm") == []
    assert s.undo() == "a.dcm" and s.runs("a.dcm") == []
    assert s.undo() is None and s.undo_depth == 0


def test_edits_outside_the_loop_or_classes_are_refused():
    s = session(10)
    with pytest.raises(UserError, match="frames 0..9, not 10"):
        s.toggle("a.dcm", 10, HEAD)
    with pytest.raises(UserError, match="class 6 is not one of 0..5"):
        s.toggle("a.dcm", 0, 6)
    with pytest.raises(UserError, match="no loop 'c.dcm'"):
        s.toggle("c.dcm", 0, HEAD)
    ro = LabelSession(CLASSES, {"a": 3}, readonly="fetalnav labels live in the MetaImage headers")
    with pytest.raises(UserError, match="MetaImage headers"):
        ro.toggle("a", 0, HEAD)
    assert s.undo_depth == 0


def test_the_file_is_written_as_runs_and_reopens_to_the_same_state(tmp_path):
    path = str(tmp_path / "labels.csv")
    counts = {"a.dcm": 20, "b.dcm": 8}
    f, labels = LabelFile.open(path, CLASSES, counts, whole_folder=True)
    s = LabelSession(CLASSES, counts, labels)
    s.toggle("b.dcm", 2, SPINE)
    s.toggle("a.dcm", 5, HEAD)
    s.toggle("a.dcm", 12, HEAD)
    f.write(s)
    assert (tmp_path / "labels.csv").read_text() == (
        "file,frames,head,spine,thorax,abdomen,limbs,placenta\n"
        "a.dcm,5-11,1,0,0,0,0,0\n"
        "a.dcm,12-19,0,0,0,0,0,0\n"
        "b.dcm,2-7,0,1,0,0,0,0\n")
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temporary left behind
    f2, labels2 = LabelFile.open(path, CLASSES, counts, whole_folder=True)
    s2 = LabelSession(CLASSES, counts, labels2)
    assert s2.frames == s.frames
    s2.toggle("a.dcm", 14, SPINE)  # continues from the file: spine on 14-19 only
    assert s2.runs("a.dcm") == [(5, 11, v(HEAD)), (12, 13, v()), (14, 19, v(SPINE))]


def test_a_files_column_order_and_other_files_rows_are_kept(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,frames,placenta,limbs,abdomen,thorax,spine,head\n"
                    "other.mp4,,1,0,0,0,0,0\n"
                    "a.mp4,0-1,0,0,0,0,0,1\n")
    f, labels = LabelFile.open(str(path), CLASSES, {"a.mp4": 4}, whole_folder=False)
    assert labels == {"a.mp4": {0: v(HEAD), 1: v(HEAD)}}
    s = LabelSession(CLASSES, {"a.mp4": 4}, labels)
    s.toggle("a.mp4", 2, SPINE)
    f.write(s)
    assert path.read_text() == ("file,frames,placenta,limbs,abdomen,thorax,spine,head\n"
                                "a.mp4,0-1,0,0,0,0,0,1\n"
                                "a.mp4,2-3,0,0,0,0,1,0\n"
                                "other.mp4,,1,0,0,0,0,0\n")


@pytest.mark.parametrize("text, message", [
    ("file,frames,head,spine,thorax,abdomen,limbs,placenta,cervix\na.dcm,0,1,0,0,0,0,0,0\n",
     "labels.csv: class 'cervix' is not one of the model's classes"),
    ("file,frames,head,spine,thorax,abdomen,limbs\na.dcm,0,1,0,0,0,0\n",
     "labels.csv: no column for the model's class 'placenta'"),
    ("file,frames,head,spine,thorax,abdomen,limbs,placenta\na.dcm,0-3,1,0,0,0,0,0\n\n"
     "a.dcm,8-10,1,0,0,0,0,0\n", "labels.csv:4: frames 8-10 of a.dcm run past its last frame 9"),
    ("file,frames,head,spine,thorax,abdomen,limbs,placenta\na.dcm,0-3,1,0,0,0,0,0\n"
     "a.dcm,3,0,0,0,0,0,0\n", "labels.csv:3: frame 3 of a.dcm is labelled twice \\(also line 2\\)"),
    ("file,frames,head,spine,thorax,abdomen,limbs,placenta\nz.dcm,0,1,0,0,0,0,0\n",
     "labels.csv:2: 'z.dcm' is not a loop in"),
    ("file,frames,head,spine,thorax,abdomen,limbs,placenta\na.dcm,0,2,0,0,0,0,0\n",
     "labels.csv:2: labels must be 0 or 1"),
])
def test_a_file_that_does_not_fit_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        LabelFile.open(str(path), CLASSES, {"a.dcm": 10}, whole_folder=True)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
