"""The out-of-distribution score: statistics, calibration, storage in the model, runtime outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from engines import ood, ood_outliers
from engines.backends import create_backend


def test_auroc_counts_ties_half_and_orders_scores():
    assert ood.auroc([0, 1, 2], [3, 4]) == 1.0
    assert ood.auroc([3, 4], [0, 1, 2]) == 0.0
    assert ood.auroc([1, 1], [1, 1]) == 0.5
    assert ood.auroc([0, 2], [1, 3]) == 0.75


@pytest.mark.parametrize("method", ["mahalanobis", "log_mahalanobis"])
def test_mahalanobis_calibrated_on_its_fitting_distribution(method):
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.5, 4.0, 16))
    feats = np.abs(rng.multivariate_normal(np.full(16, 10.0), cov, 4000))
    scores = rng.normal(0, 1, (4000, 6))
    m = ood.fit(method, scores, feats, limit=0.99)
    fresh = np.abs(rng.multivariate_normal(np.full(16, 10.0), cov, 2000))
    o, familiar = m(scores[:2000], fresh)
    # calibrated: fresh in-distribution frames are spread evenly and ~1% are flagged
    assert abs(np.median(o) - 0.5) < 0.05
    assert 0.0 < 1 - familiar.mean() < 0.03
    far = fresh + 6.0  # every feature shifted by several standard deviations
    o_far, fam_far = m(scores[:2000], far)
    assert (o_far == 1.0).all() and not fam_far.any()
    assert ood.auroc(m.raw(scores[:2000], fresh), m.raw(scores[:2000], far)) > 0.99


def test_energy_needs_no_features_and_flags_silent_logits():
    rng = np.random.default_rng(1)
    confident = rng.normal(0, 3, (1000, 6))
    m = ood.fit("energy", confident)
    assert not m.needs_features
    o, familiar = m(np.full((5, 6), -30.0))  # no evidence for any class: the highest energy
    assert o.shape == (5,) and (o == 1.0).all() and not familiar.any()


def test_statistics_survive_storage_exactly():
    rng = np.random.default_rng(2)
    feats = rng.gamma(2.0, 1.0, (300, 8))
    m = ood.fit("mahalanobis", rng.normal(size=(300, 6)), feats, limit=0.95, source="sim:n=300")
    back = ood.OodModel.from_json(m.to_json())
    x = rng.gamma(2.0, 1.0, (50, 8))
    np.testing.assert_array_equal(back.raw(None, x), m.raw(None, x))
    assert (back.limit, back.source, back.n, back.method) == (0.95, "sim:n=300", 300, "mahalanobis")
    with pytest.raises(ValueError, match="malformed"):
        ood.OodModel.from_json('{"method": "mahalanobis"}')


def test_fit_refuses_too_few_frames_and_missing_features():
    with pytest.raises(ValueError, match="at least 50"):
        ood.fit("energy", np.zeros((10, 6)))
    with pytest.raises(ValueError, match="pooled features"):
        ood.fit("mahalanobis", np.zeros((100, 6)))


def test_feature_output_is_what_the_classifier_reads(tmp_path, compact_onnx):
    import onnxruntime as ort

    model = onnx.load(str(compact_onnx))
    assert ood.add_feature_output(model) is True
    assert ood.add_feature_output(model) is False  # idempotent
    path = tmp_path / "f.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 224, 224), dtype=np.float32)
    scores, feats = sess.run(["scores", ood.FEATURES], {"input": x})
    w = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    linear = w["head.classifier.0.weight"], w["head.classifier.0.bias"]
    np.testing.assert_allclose(feats @ linear[0].T + linear[1], scores, rtol=1e-4, atol=1e-4)


def test_store_then_every_frame_gets_ood_through_the_backend(tmp_path, compact_onnx):
    from engines.ood_fit import store

    out = tmp_path / "with_ood.onnx"
    report = store(compact_onnx, "sim:n=60,seed=5", out, method="auto",
                   test="sim:n=20,seed=6", kinds=("noise",), test_n=20)
    assert set(report["methods"]) == set(ood.METHODS)
    assert report["methods"][report["method"]]["mean_auroc"] == max(
        m["mean_auroc"] for m in report["methods"].values())
    m = ood.load(out)
    assert m is not None and m.method == report["method"] and m.n == 60
    assert ood.load(compact_onnx) is None  # the original is untouched
    with create_backend("onnxruntime", out) as backend:
        res = backend.infer(np.zeros((2, 1, 224, 224), np.float32))
    assert res.features is not None and res.features.shape[0] == 2
    o, familiar = m(res.scores, res.features)
    assert o.shape == (2,) and familiar.dtype == bool
    with create_backend("onnxruntime", compact_onnx) as backend:
        assert backend.infer(np.zeros((1, 1, 224, 224), np.float32)).features is None


def test_outlier_kinds_are_deterministic_images_of_the_input_size():
    for kind in ood_outliers.KINDS:
        if not ood_outliers.available(kind):
            continue
        a = ood_outliers.images(kind, 2, 64, polar=True, seed=3)
        b = ood_outliers.images(kind, 2, 64, polar=True, seed=3)
        assert a.shape == (2, 64, 64) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="outlier kind"):
        ood_outliers.images("cats", 1, 64, polar=False)


def test_the_features_output_has_a_shape_the_checker_and_triton_accept(compact_onnx_dynamic):
    from engines.defaults import default_onnx

    model = onnx.load(str(compact_onnx_dynamic))
    assert ood.add_feature_output(model)
    onnx.checker.check_model(model, full_check=True)
    out = next(o for o in model.graph.output if o.name == ood.FEATURES).type.tensor_type.shape.dim
    scores = next(o for o in model.graph.output if o.name == "scores").type.tensor_type.shape.dim
    assert out[0].dim_param == scores[0].dim_param and out[1].dim_value == 128
    bundled = onnx.load(str(default_onnx()))
    onnx.checker.check_model(bundled, full_check=True)  # the shipped model too
