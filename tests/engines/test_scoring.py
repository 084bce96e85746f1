import math

import numpy as np
import pytest

from engines.localisation import inside, iou, locate
from engines.scoring import average_precision, class_metrics, detection_report, probabilities


def test_class_metrics_against_a_hand_computed_case():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    prob = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.8])
    m = class_metrics(truth, prob)
    # predicted positive: 0.9 0.6 0.7 0.8 -> tp 3 (0.9, 0.6, 0.8), fp 1 (0.7), fn 1 (0.2), tn 3
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 1, 1, 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    # ranks of positives: 0.9 (1), 0.8 (2), 0.6 (4, after 0.7), 0.2 (7) -> precisions 1, 1, 3/4, 4/7
    assert m["ap"] == pytest.approx((1 + 1 + 0.75 + 4 / 7) / 4)


def test_average_precision_edges():
    assert average_precision(np.array([1, 0]), np.array([0.9, 0.1])) == 1.0
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.1])) == 0.5
    assert math.isnan(average_precision(np.zeros(3), np.ones(3)))


def test_detection_report_means_over_classes():
    labels = np.array([[1, 0], [0, 0], [1, 1]])
    prob = np.array([[0.9, 0.9], [0.1, 0.2], [0.8, 0.1]])
    r = detection_report(labels, prob, ("a", "b"))
    assert r["per_class"]["a"]["accuracy"] == 1.0 and r["per_class"]["b"]["accuracy"] == pytest.approx(1 / 3)
    assert r["mean_accuracy"] == pytest.approx(2 / 3)


def test_probabilities_sigmoid_and_softmax():
    s = np.array([[0.0, 2.0]])
    assert np.allclose(probabilities(s, "sigmoid"), [[0.5, 1 / (1 + math.exp(-2))]])
    p = probabilities(s, "softmax")
    assert p.sum() == pytest.approx(1.0) and p[0, 1] > p[0, 0]
    assert np.isfinite(probabilities(np.array([-1e4, 1e4]), "sigmoid")).all()
    with pytest.raises(ValueError, match="activation"):
        probabilities(s, "tanh")


def test_peak_and_box_land_where_the_map_is_hot():
    m = np.zeros((14, 14), np.float32)
    m[3:6, 8:11] = 1.0
    m[4, 9] = 1.2
    (x, y), b = locate(m, 224)
    assert inside((x, y), (8 * 16, 3 * 16, 11 * 16, 6 * 16))
    assert iou(b, (8 * 16, 3 * 16, 11 * 16, 6 * 16)) > 0.5
    assert locate(np.ones((4, 4)), 64)[1] is None  # flat: nowhere in particular
    assert locate(-np.ones((4, 4)) - np.eye(4), 64)[1] is None  # no positive evidence


def test_box_keeps_only_the_component_holding_the_peak():
    m = np.zeros((14, 14), np.float32)
    m[2:4, 2:4], m[10:12, 10:12] = 1.0, 0.9
    _, b = locate(m, 140)
    assert b[2] <= 70 and b[3] <= 70


def test_iou_hand_cases():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert iou(None, (0, 0, 1, 1)) == 0.0
