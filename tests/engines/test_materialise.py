import numpy as np
import pytest

from engines.datasets import open_dataset
from engines.datasets.materialise import default_workers, materialise


def test_frames_rendered_on_several_workers_equal_those_of_one_in_index_order(monkeypatch):
    import engines.datasets.materialise as m

    monkeypatch.setattr(m, "CHUNK", 2)  # several chunks, finishing in any order
    data = open_dataset("sim:n=7,seed=5,polar=1", 64)
    x1, y1 = materialise(data, progress=False, workers=1)
    x2, y2 = materialise(data, progress=False, workers=2)
    assert x1.shape == (7, 64, 64) and y1.shape == (7, 6)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1[0], x1[1])  # frames differ: each index is its own frame
    assert np.array_equal(x1[3], data[3].image)


def test_small_data_sets_stay_in_process_and_empty_ones_are_refused():
    assert default_workers(10) == 1
    with pytest.raises(ValueError, match="empty"):
        materialise([], progress=False)
