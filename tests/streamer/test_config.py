import pytest

from streamer.config import Config, InferenceConfig, PreprocessConfig, load_config, override


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_and_a_full_file(tmp_path):
    assert Config().metrics.port == 9108 and Config().source.spec == "sim"
    cfg = load_config(write(tmp_path, """
[source]
spec = "zmq:tcp://127.0.0.1:5550"
[model]
path = "m.onnx"
threads = 2
spin = true
[preprocess]
roi = [10, 20, 300, 200]
[postprocess]
threshold = 0.6
thresholds = { head = 0.7 }
smoothing = 0.5
hysteresis = 0.1
[publish]
stream = "us1"
[metrics]
port = 0
[pipeline]
max_frames = 5
"""))
    assert cfg.source.spec.startswith("zmq:") and cfg.model.threads == 2 and cfg.model.spin
    assert not Config().model.spin
    assert cfg.preprocess.roi == (10, 20, 300, 200) and cfg.preprocess.mode == "roi"
    assert cfg.postprocess.threshold_for("head") == 0.7 and cfg.postprocess.threshold_for("spine") == 0.6
    assert cfg.publish.stream == "us1" and cfg.metrics.port == 0 and cfg.pipeline.max_frames == 5


@pytest.mark.parametrize("text, message", [
    ("[source]\nspek = 'sim'", "unknown key 'spek' in section [source]"),
    ("[sauce]\nspec = 'sim'", "unknown section [sauce]"),
    ("[metrics]\nport = 'x'", "[metrics] port must be int"),
    ("[metrics]\nport = 70000", "port must be in 0..65535"),
    ("[postprocess]\nthreshold = 1.5", "threshold"),
    ("[publish]\nstream = 'a b'", "stream name"),
    ("[preprocess]\nroi = [1, 2, 3]", "roi"),
    ("[source\n", "not valid TOML"),
    ("[model]\nbackend = 'onnxrt'", "[model] backend must be one of onnxruntime, remote, tensorrt, torch"),
    ("[model]\nprecision = 'int4'", "[model] precision must be one of fp32, fp16, int8"),
])
def test_bad_files_are_refused_with_one_clear_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.toml")


def test_flags_override_the_file_and_configs_are_frozen(tmp_path):
    cfg = load_config(write(tmp_path, "[model]\npath = 'a.onnx'\n[metrics]\nport = 9000\n"))
    cfg = override(cfg, model={"path": "b.onnx", "backend": None}, metrics={"port": 0})
    assert cfg.model.path == "b.onnx" and cfg.model.backend == "onnxruntime" and cfg.metrics.port == 0
    with pytest.raises(AttributeError):
        cfg.model.path = "c"  # type: ignore[misc]
    with pytest.raises(ValueError, match="mode"):
        PreprocessConfig(mode="polar")


def test_backend_choices_come_from_the_backend_registry(monkeypatch, capsys):
    """A backend added to the registry is accepted by the config and offered by --backend."""
    import engines.backends as backends
    from streamer.cli import build_parser

    monkeypatch.setitem(backends.REGISTRY, "mine", "somewhere:MineBackend")
    assert InferenceConfig(backend="mine").backend == "mine"
    assert build_parser().parse_args(["run", "--backend", "mine"]).backend == "mine"
    monkeypatch.delitem(backends.REGISTRY, "mine")
    with pytest.raises(ValueError, match="backend must be one of"):
        InferenceConfig(backend="mine")
