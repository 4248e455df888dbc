"""Two MultiWorkerMirroredStrategy workers on localhost against one process."""

import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_bandrnn import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "multiworker.py")
WORKER_TIMEOUT_S = 90  # each worker process, hard limit (the test must never hang)
COLLECTIVE_TIMEOUT_S = 60  # each all-reduce, so a lost peer fails instead of hanging
# SGD: its update is linear in the gradient, so a wrongly scaled all-reduce
# (e.g. the loss divided by the number of replicas twice) shows at once;
# Adam would hide most of it.
ARGS = dict(steps=3, global_batch=8, units=16, half_width=2, delay=5, seed=3,
            optimizer="sgd", learning_rate=0.5)


@functools.lru_cache(maxsize=None)  # its absl flags may be defined once
def load_example():
    spec = importlib.util.spec_from_file_location("multiworker_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiworker")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    flags = [f"--{k}={v}" for k, v in ARGS.items()]
    flags += ["--distribute=multi_worker", f"--collective_timeout_s={COLLECTIVE_TIMEOUT_S}"]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        log = open(tmp / f"worker{index}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, SCRIPT, *flags, f"--weights_out={tmp / f'w{index}.npz'}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for proc, _ in procs:
            proc.wait(timeout=WORKER_TIMEOUT_S)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = [(tmp / f"worker{i}.log").read_text()[-3000:] for i in range(2)]
    for (proc, _), log in zip(procs, logs):
        assert proc.returncode == 0, log
    weights = []
    for i in range(2):
        with np.load(tmp / f"w{i}.npz") as f:
            weights.append([f[f"arr_{j}"] for j in range(len(f.files))])
    return weights, logs


def test_workers_hold_identical_weights(two_workers):
    (w0, w1), logs = two_workers
    assert "of 2" in logs[0] and "of 2" in logs[1]  # both really ran as a 2-worker cluster
    assert len(w0) == len(w1) == 5
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)


def test_workers_match_one_process_on_the_global_batch(two_workers):
    (w0, _), _ = two_workers
    example = load_example()
    model, losses = example.train("none", **ARGS)
    initial = example.build_model(ARGS["units"], ARGS["half_width"], ARGS["seed"],
                                  ARGS["optimizer"], ARGS["learning_rate"])
    assert len(losses) == ARGS["steps"] and all(np.isfinite(losses))
    for trained, single, start in zip(w0, model.weights, initial.weights):
        np.testing.assert_allclose(trained, single.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(trained, start.numpy())  # training moved every weight


def test_fit_matches_keras_fit_without_distribution():
    """`distribute.fit` makes the same updates as Keras's own `fit`."""
    example = load_example()
    args = dict(ARGS, steps=2)
    model, _ = example.train("none", **args)
    x, y = example.copy_task(args["steps"] * args["global_batch"], args["delay"], args["seed"])
    ref = example.build_model(args["units"], args["half_width"], args["seed"],
                              args["optimizer"], args["learning_rate"])
    ref.fit(x, y, batch_size=args["global_batch"], epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.weights, ref.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_split_batch_one_replica_and_short_dataset():
    import tensorflow as tf

    s = distribute.strategy("none")
    (x,) = distribute.split_batch(s, (tf.range(6),))
    np.testing.assert_array_equal(x, np.arange(6))  # one replica: the whole batch
    with pytest.raises(ValueError, match="dataset"):
        example = load_example()
        with s.scope():
            model = example.build_model(8, 1, 0)
        distribute.fit(model, [], 1, s)


def test_strategy_arguments():
    with pytest.raises(ValueError, match="kind"):
        distribute.strategy("tpu")
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    old = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(ValueError, match="TF_CONFIG"):
            distribute.strategy("multi_worker")
        assert distribute.cluster_spec() == (None, 0, 1)
        assert distribute.is_chief()
        os.environ["TF_CONFIG"] = "not json"
        with pytest.raises(ValueError, match="TF_CONFIG"):
            distribute.cluster_spec()
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}})
        assert distribute.cluster_spec() == ("worker", 1, 2)
        assert not distribute.is_chief()
        assert distribute.output_dir("/x").startswith("/x/.workers/")
    finally:
        os.environ.pop("TF_CONFIG", None)
        if old is not None:
            os.environ["TF_CONFIG"] = old
