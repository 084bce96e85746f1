"""Remote use: CurveZMQ keys, the bind rules for publishers and metrics, and subscribers that
survive whatever a publisher sends."""

import logging
import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.cli import main
from streamer.client import ResultSubscriber
from streamer.config import Config, MetricsConfig, PublishConfig, config_from_dict
from streamer.errors import UserError
from streamer.frames import SourceLost
from streamer.protocol import encode_frame
from streamer.security import make_keys
from streamer.sinks.zmq_sink import ZmqSink, bind_publisher
from streamer.sources import open_source
from tests.streamer.test_sinks import result, wait_connected


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A valid key pair the publisher has never been told about."""
    return make_keys(tmp_path_factory.mktemp("other"))


def secure_sink(keys):
    return ZmqSink(endpoint="tcp://127.0.0.1:*", curve_secret=str(keys["server_secret"]),
                   curve_clients=str(keys["allowed_clients"]))


def test_keys_command_writes_pairs_and_the_allowed_client(tmp_path, capsys):
    assert main(["keys", "--out", str(tmp_path / "k")]) == 0
    names = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert names == ["allowed_clients", "client.key", "client.key_secret", "server.key",
                     "server.key_secret"]
    assert (tmp_path / "k" / "allowed_clients" / "client.key").is_file()
    assert (tmp_path / "k" / "server.key_secret").stat().st_mode & 0o077 == 0
    assert main(["keys", "--out", str(tmp_path / "k")]) == 2  # never overwrites keys
    assert "already holds" in capsys.readouterr().err


def test_curve_round_trip_only_with_the_right_key(keys, stranger):
    with secure_sink(keys) as sink, \
         ResultSubscriber(sink.endpoint, topics=("det", "status"),
                          server_key=str(keys["server_public"]),
                          client_key=str(keys["client_secret"])) as good, \
         ResultSubscriber(sink.endpoint, topics=("det", "status"),
                          server_key=str(keys["server_public"]),
                          client_key=str(stranger["client_secret"])) as wrong, \
         ResultSubscriber(sink.endpoint, topics=("det", "status")) as plain:
        wait_connected(sink, good)
        for seq in range(5):
            sink.publish(result(seq))
            time.sleep(0.02)
        got = [good.recv(1.0) for _ in range(5)]
        assert [m.seq for m in got] == list(range(5))
        assert wrong.recv(0.3) is None and plain.recv(0.1) is None


def test_remote_bind_needs_keys_or_an_explicit_insecure(keys, caplog):
    with pytest.raises(UserError, match="not a loopback address"):
        bind_publisher("tcp://0.0.0.0:*")
    with pytest.raises(UserError, match="needs CurveZMQ keys"):
        bind_publisher("tcp://0.0.0.0:*", allow_remote=True)
    with caplog.at_level(logging.WARNING):
        sock = bind_publisher("tcp://0.0.0.0:*", allow_remote=True, insecure=True)
    sock.close(linger=0)
    assert "INSECURE" in caplog.text
    sink = ZmqSink(endpoint="tcp://0.0.0.0:*", allow_remote=True,
                   curve_secret=str(keys["server_secret"]), curve_clients=str(keys["allowed_clients"]))
    with sink:
        assert sink.endpoint.startswith("tcp://0.0.0.0:")


def test_remote_subscribers_need_keys_or_insecure(keys):
    with pytest.raises(UserError, match="needs CurveZMQ keys"):
        ResultSubscriber("tcp://10.1.2.3:5556")
    with pytest.raises(UserError, match="needs CurveZMQ keys"):
        open_source("zmq:tcp://10.1.2.3:5550")
    with pytest.raises(UserError, match="both"):
        ResultSubscriber("tcp://127.0.0.1:5556", server_key=str(keys["server_public"]))
    ResultSubscriber("tcp://10.1.2.3:5556", insecure=True).close()


def test_metrics_host_follows_the_same_rule(tmp_path, capsys):
    with pytest.raises(UserError, match=r"\[metrics\] host 0.0.0.0 is not loopback"):
        config_from_dict({"metrics": {"host": "0.0.0.0"}})
    with pytest.raises(UserError, match="--insecure"):
        Config(metrics=MetricsConfig(host="0.0.0.0"), publish=PublishConfig(allow_remote=True))
    Config(metrics=MetricsConfig(host="0.0.0.0"), publish=PublishConfig(allow_remote=True,
                                                                         insecure=True))
    Config(metrics=MetricsConfig(host="0.0.0.0", port=0))  # no endpoint, nothing to refuse
    toml = tmp_path / "c.toml"
    toml.write_text('[metrics]\nhost = "0.0.0.0"\n')
    assert main(["run", "--config", str(toml), "--max-frames", "1"]) == 2
    assert "not loopback" in capsys.readouterr().err


def test_zmq_source_with_curve_keys(keys, stranger):
    """Frames in over CurveZMQ: the right key gets frames, a stranger's key gets none."""
    pub = bind_publisher("tcp://127.0.0.1:*", keys=_server(keys))
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    spec = f"zmq:{endpoint},server_key={keys['server_public']}"
    try:
        with open_source(f"{spec},client_key={keys['client_secret']}") as good, \
             open_source(f"{spec},client_key={stranger['client_secret']},timeout=5") as bad:
            frame = None
            for seq in range(100):
                pub.send_multipart(encode_frame(np.zeros((4, 6), np.uint8), seq, 0, fmt="gray"))
                frame = good.read(0.02)
                if frame is not None:
                    break
            assert frame is not None and frame.image.shape == (4, 6)
            assert bad.read(0.2) is None and bad.received == 0
    finally:
        pub.close(linger=0)


def _server(keys):
    from streamer.security import ServerKeys

    return ServerKeys(str(keys["server_secret"]), str(keys["allowed_clients"]))


def test_zmq_source_exact_topic_and_max_message_size():
    """frames2 shares the prefix but is not ours; an over-sized message never reaches memory
    (ZMQ_MAXMSGSIZE drops the connection), the source goes lost and a reopen recovers."""
    pub = bind_publisher("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    small = encode_frame(np.zeros((10, 10), np.uint8), 1, 0, fmt="gray")

    def first_frame(src):
        for _ in range(100):
            pub.send_multipart([b"frames2", *small[1:]])
            pub.send_multipart(small)
            if (frame := src.read(0.02)) is not None:
                return frame
        return None

    try:
        with open_source(f"zmq:{endpoint},max_pixels=400,timeout=0.3") as src:
            assert first_frame(src).seq == 1 and src.ignored >= 1
            received, dropped = src.received, src.dropped  # (the probes may have queued two)
            pub.send_multipart(encode_frame(np.zeros((1000, 1000), np.uint8), 2, 0, fmt="gray"))
            with pytest.raises(SourceLost):
                for _ in range(100):
                    pub.send_multipart(small)
                    assert src.read(0.02) is None  # nothing from this connection any more
            assert src.received == received and src.dropped == dropped
            src.close()
            src.open()
            assert first_frame(src).seq == 1
    finally:
        pub.close(linger=0)


def test_subscriber_survives_deeply_nested_and_garbage_messages():
    pub = bind_publisher("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    with ResultSubscriber(endpoint, topics=("det", "map", "status")) as sub:
        for _ in range(100):
            pub.send_multipart([b"status.x", b'{"v":1}'])
            if sub.recv(0.02) is not None:
                break
        pub.send_multipart([b"det.x", b"[" * 100000])
        pub.send_multipart([b"map.x", b'{"v":1,"shape":[2,2,2],"seq":0,"classes":[]}', b"\0"])
        pub.send_multipart([b"status.x", b'{"v":1}'])
        msg = sub.recv(1.0)
        assert msg is not None and msg.stream == "x" and sub.invalid == 2
    pub.close(linger=0)


@settings(max_examples=40, deadline=None)
@given(messages=st.lists(st.tuples(st.sampled_from([b"det.", b"map.", b"status."]),
                                   st.lists(st.binary(max_size=60), min_size=1, max_size=3)),
                         max_size=5))
def test_subscriber_recv_is_total(messages):
    """Whatever a publisher sends, recv returns messages or None and counts the rest."""
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink, \
         ResultSubscriber(sink.endpoint, topics=("det", "map", "status")) as sub:
        wait_connected(sink, sub)
        for kind, parts in messages:
            sink._send([kind + parts[0], *parts[1:]])
        sink.publish_status({"end": True})
        while (msg := sub.recv(0.5)) is not None:
            if getattr(msg, "status", {}).get("end"):
                break


@pytest.mark.parametrize("flags, what", [(["--view-port", "0", "--view-host", "0.0.0.0"], "viewer"),
                                         (["--igtl-port", "0", "--igtl-host", "0.0.0.0"], "OpenIGTLink")])
def test_plaintext_live_outputs_off_loopback_need_insecure(flags, what, capsys):
    """The viewer and OpenIGTLink are plaintext: --allow-remote alone does not expose them."""
    base = ["run", "--max-frames", "1", "--metrics-port", "0", "--publish", "tcp://127.0.0.1:*"]
    assert main(base + flags) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert main(base + flags + ["--allow-remote"]) == 2
    err = capsys.readouterr().err
    assert f"refusing plaintext {what}" in err and "--insecure" in err
