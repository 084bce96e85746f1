"""A model's metadata is checked where every backend reads it: a model that cannot run is one
line at load (naming the file and the key, exit 2), never a traceback or a stream of invalid
frames."""

from __future__ import annotations

import base64
import json

import numpy as np
import onnx
import pytest

from engines.defaults import default_onnx
from engines.errors import UserError
from engines.model_info import META_PREFIX, ModelInfo
from engines.ood import LEVELS

FEATURES = 128  # the bundled model's pooled features


@pytest.fixture(scope="module")
def bundled():
    return onnx.load(str(default_onnx()))


def metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def pack(a) -> dict:
    a = np.ascontiguousarray(a, np.float32)
    return {"shape": list(a.shape), "f32": base64.b64encode(a.tobytes()).decode()}


def with_ood(meta: dict, **changes) -> dict:
    stats = json.loads(meta[META_PREFIX + "ood"])
    return {**meta, META_PREFIX + "ood": json.dumps({**stats, **changes})}


CASES = {  # name: (change to the bundled metadata, the key named, what the line says)
    "ood_not_json": (lambda m: {**m, "sonostream.ood": '{"method": "mahal'}, "ood",
                     "not valid JSON"),
    "ood_limit_above_1": (lambda m: with_ood(m, limit=1.5), "ood", "limit must be in (0, 1]"),
    "ood_limit_text": (lambda m: with_ood(m, limit="high"), "ood", "'high'"),
    "ood_limit_nan": (lambda m: with_ood(m, limit=float("nan")), "ood", "limit must be in"),
    "ood_unknown_method": (lambda m: with_ood(m, method="knn"), "ood", "method must be one of"),
    "ood_no_quantiles": (lambda m: with_ood(m, quantiles=pack(np.zeros(0))), "ood",
                         f"quantiles has shape [0], expected {len(LEVELS)}"),
    "ood_quantiles_decrease": (lambda m: with_ood(m, quantiles=pack(-LEVELS)), "ood",
                               "quantiles must not decrease"),
    "ood_wrong_dimension": (lambda m: with_ood(m, mean=pack(np.zeros(64)), whiten=pack(np.eye(64))),
                            "ood", f"statistics are for 64 features, the model outputs {FEATURES}"),
    "ood_whiten_not_square": (lambda m: with_ood(m, whiten=pack(np.zeros((FEATURES, 3)))), "ood",
                              f"whiten has shape [{FEATURES}, 3]"),
    "ood_not_finite": (lambda m: with_ood(m, mean=pack(np.full(FEATURES, np.inf))), "ood",
                       "not finite"),
    "classes_integers": (lambda m: {**m, "sonostream.classes": "[1, 2, 3, 4, 5, 6]"}, "classes",
                         "class names must be non-empty strings, got 1"),
    "classes_duplicate": (lambda m: {**m, "sonostream.classes": json.dumps(["head"] * 6)},
                          "classes", "'head' named twice"),
    "classes_not_json": (lambda m: {**m, "sonostream.classes": "[head"}, "classes",
                         "not valid JSON"),
    "classes_not_a_list": (lambda m: {**m, "sonostream.classes": '"head"'}, "classes",
                           "must be a list of names"),
    "input_size_text": (lambda m: {**m, "sonostream.input_size": "big"}, "input_size",
                        "must be an integer"),
    "input_size_huge": (lambda m: {**m, "sonostream.input_size": "100000"}, "input_size",
                        "must be an integer in 8..4096"),
    "head_unknown": (lambda m: {**m, "sonostream.head": "twin"}, "head", "must be one of"),
    "precision_unknown": (lambda m: {**m, "sonostream.precision": "int4"}, "precision",
                          "must be one of"),
    "recipe_not_json": (lambda m: {**m, "sonostream.recipe": "{"}, "recipe", "recipe"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_metadata_is_one_line_naming_the_file_and_key(bundled, case):
    change, key, says = CASES[case]
    with pytest.raises(UserError) as err:
        ModelInfo.from_metadata(change(metadata(bundled)), "m.onnx", features=FEATURES)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"m.onnx: metadata sonostream.{key}: "), line
    assert says in line, line


def test_the_bundled_model_and_a_model_without_statistics_load(bundled):
    info = ModelInfo.from_metadata(metadata(bundled), "m.onnx", features=FEATURES)
    assert len(info.classes) == 6
    plain = {k: v for k, v in metadata(bundled).items() if k != "sonostream.ood"}
    assert ModelInfo.from_metadata(plain, "m.onnx").classes == info.classes


def test_direct_construction_checks_the_same(bundled):
    """Backends that describe a model without ONNX metadata (torch) get the same checks."""
    with pytest.raises(UserError, match="'a' named twice"):
        ModelInfo(("a", "b", "a"), "sigmoid", 224)
    with pytest.raises(UserError, match="must be a list of names"):
        ModelInfo("head", "sigmoid", 224)


def save_with(bundled, tmp_path, name: str, meta: dict):
    model = onnx.ModelProto()
    model.CopyFrom(bundled)
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case", ["ood_wrong_dimension", "classes_duplicate", "ood_not_json",
                                  "classes_integers"])
def test_run_refuses_the_model_in_one_line_exit_2(bundled, tmp_path, capsys, case):
    """Before: statistics of the wrong dimension made every frame invalid and duplicate names
    published one class instead of six, both exit 0; bad JSON or integer names: a traceback."""
    from streamer.cli import main

    change, key, _ = CASES[case]
    path = save_with(bundled, tmp_path, case, change(metadata(bundled)))
    code = main(["run", "--model", str(path), "--source", "sim:realtime=0", "--max-frames", "3",
                 "--publish", "", "--metrics-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(path) in err[0] and f"sonostream.{key}" in err[0], err
