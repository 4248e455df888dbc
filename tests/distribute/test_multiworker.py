"""The example scripts' `--distribute` flag and `keras_bandrnn.distribute`.

Two `MultiWorkerMirroredStrategy` workers on localhost run
`python -m examples.copy_task --distribute=multi_worker` and are compared
with one process (`--distribute=none`) on the same global batches; text8's
carried TBPTT state (through a stop and a resume) and braille are checked
with `--distribute=mirrored` over two logical CPU devices (two replicas in
one process).
"""

import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from examples import braille
from examples import common
from examples import copy_task
from examples import text8
from keras_bandrnn import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_TIMEOUT_S = 150  # each worker process, hard limit (the test must never hang)
COLLECTIVE_TIMEOUT_S = 60  # each all-reduce, so a lost peer fails instead of hanging
# A small clipnorm keeps gradient clipping active in every step: clipping
# each replica's gradient instead of the summed one would show.
COPY_ARGS = ["--quick", "--delay=5", "--steps=3", "--checkpoint_every=2", "--eval_every=2",
             "--learning_rate=0.01", "--clipnorm=0.05", "--verbose=0"]
PORT_IN_USE = ("address already in use", "could not start grpc server", "failed to add port")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_cluster(args, tmp, attempt):
    """Starts two workers on localhost; returns their (return code, log) pairs.
    As soon as one fails, the other is killed (it would wait for its peer)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        log = open(tmp / f"worker{index}_{attempt}.log", "w+")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "examples.copy_task", *args], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.time() + WORKER_TIMEOUT_S
    try:
        while time.time() < deadline and any(p.poll() is None for p, _ in procs):
            if any(p.poll() not in (None, 0) for p, _ in procs):
                break
            time.sleep(0.2)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    results = []
    for proc, log in procs:
        log.seek(0)
        results.append((proc.returncode, log.read()[-4000:]))
        log.close()
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory, two_replicas_started):
    """Output dirs of a two-worker run and of one process on the same flags
    (the two-replica runs go on meanwhile, in their own process)."""
    del two_replicas_started
    tmp = tmp_path_factory.mktemp("multiworker")
    for attempt in range(3):  # a port picked free may be taken before a worker binds it
        out = tmp / f"workers{attempt}"
        args = [*COPY_ARGS, "--distribute=multi_worker",
                f"--collective_timeout_s={COLLECTIVE_TIMEOUT_S}", f"--output_dir={out}"]
        results = run_cluster(args, tmp, attempt)
        if not any(rc and any(m in log.lower() for m in PORT_IN_USE) for rc, log in results):
            break
    for rc, log in results:
        assert rc == 0, log
    common.run_main(copy_task.main, ["copy_task", *COPY_ARGS, "--distribute=none",
                                     f"--output_dir={tmp / 'single'}"])
    return out, out / ".workers" / "worker_1", tmp / "single"


def checkpoint(path, step=None):
    """`{name: array}` of a checkpoint (the latest, or that of `step`),
    without the wall-clock time (which differs from run to run)."""
    prefix = tf.train.latest_checkpoint(path / "checkpoints")
    if step is not None:
        prefix = os.path.join(path / "checkpoints", f"ckpt-{step}")
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if not k.startswith(("elapsed", "_CHECKPOINTABLE"))}


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_workers_end_with_identical_weights_and_only_the_chief_writes_the_output(runs):
    chief, worker, _ = runs
    a, b = checkpoint(chief), checkpoint(worker)
    assert a.keys() == b.keys() and len(a) > 10  # weights, optimizer slots, step
    assert int(a["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 3
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with open(chief / "result.json") as f:
        result = json.load(f)
    assert result["config"]["distribute"] == "multi_worker" and result["steps"] == 3
    assert os.listdir(chief / "tensorboard")
    # The other worker wrote the same files to its scratch directory only.
    assert sorted(os.listdir(chief)) == [".workers", "checkpoints", "eval_log.jsonl", "result.json",
                                         "tensorboard", "train_log.jsonl"]
    assert os.listdir(chief / ".workers") == ["worker_1"]
    assert read_jsonl(chief / "train_log.jsonl") == read_jsonl(worker / "train_log.jsonl")
    # Both evaluated on the full evaluation batches: the same numbers.
    evals = [read_jsonl(d / "eval_log.jsonl") for d in (chief, worker)]
    assert [e["step"] for e in evals[0]] == [2, 3]
    for e0, e1 in zip(*evals):
        assert {k: v for k, v in e0.items() if k != "elapsed_seconds"} == \
               {k: v for k, v in e1.items() if k != "elapsed_seconds"}


def test_workers_match_one_process_on_the_global_batch(runs):
    chief, _, single = runs
    a, b = checkpoint(chief), checkpoint(single)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # Training moved every trainable weight between the last two checkpoints.
    before = checkpoint(single, step=2)
    moved = [k for k in b if "_trainable_variables" in k]
    assert len(moved) == 5
    for k in moved:
        assert not np.allclose(b[k], before[k]), k
    # The same batches (fingerprints) and losses, step by step.
    logs = [read_jsonl(d / "train_log.jsonl") for d in (chief, single)]
    assert [r["batch"] for r in logs[0]] == [r["batch"] for r in logs[1]]
    np.testing.assert_allclose([r["loss"] for r in logs[0]], [r["loss"] for r in logs[1]], rtol=1e-5)


TWO_REPLICAS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from examples import braille, common, text8
for module, args in json.loads(sys.argv[1]):
    common.run_main(getattr(sys.modules["examples." + module], "main"), [module, *args])
print("replicas:", common.strategy().num_replicas_in_sync)
"""


def text8_args(tmp):
    corpus = tmp / "corpus.txt"
    if not corpus.exists():
        words = ["the", "band", "matrix", "shift", "register", "of", "a", "cell"]
        corpus.write_text(" ".join(np.random.default_rng(0).choice(words, 4000)))
    return ["--quick", "--model=band", "--units=32", "--half_width=4", "--batch_size=8",
            f"--text={corpus}", "--eval_every=100", "--checkpoint_every=2", "--eval_chars=1000",
            "--verbose=0"]


BRAILLE_ARGS = ["--quick", "--model=closed", "--steps=2", "--eval_every=100", "--verbose=0"]


@pytest.fixture(scope="module")
def two_replicas_started(tmp_path_factory):
    """Starts one process with two replicas (MirroredStrategy on two logical
    CPUs) running text8 stopped after 2 steps and resumed to 4, and braille
    for 2 steps; yields `(process, its directory)`."""
    tmp = tmp_path_factory.mktemp("two_replicas")
    mirrored = ["--distribute=mirrored"]
    runs = [
        ("text8", [*text8_args(tmp), *mirrored, "--steps=2", f"--output_dir={tmp / 'text8'}"]),
        ("text8", [*text8_args(tmp), *mirrored, "--steps=4", f"--output_dir={tmp / 'text8'}"]),
        ("braille", [*BRAILLE_ARGS, *mirrored, f"--output_dir={tmp / 'braille'}"]),
    ]
    with open(tmp / "log.txt", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TWO_REPLICAS, json.dumps(runs)], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
    try:
        yield proc, tmp
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def two_replicas(two_replicas_started):
    """The directory of the two-replica runs, once they have finished."""
    proc, tmp = two_replicas_started
    try:
        proc.wait(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = (tmp / "log.txt").read_text()
    assert proc.returncode == 0, log[-4000:]
    assert "replicas: 2" in log
    assert "at step 2" in log  # text8 did resume
    return tmp


def assert_same_training(distributed, single, rtol):
    a, b = checkpoint(distributed), checkpoint(single)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol / 10, err_msg=k)
    logs = [read_jsonl(d / "train_log.jsonl") for d in (distributed, single)]
    assert [r["batch"] for r in logs[0]] == [r["batch"] for r in logs[1]]
    np.testing.assert_allclose([r["loss"] for r in logs[0]], [r["loss"] for r in logs[1]], rtol=1e-5)
    return a


def test_text8_carries_each_replicas_state_like_one_process(two_replicas, tmp_path):
    """Each replica carries the states of its half of the streams, through a
    stop and a resume: the same losses, weights and carried state as one process."""
    common.run_main(text8.main, ["text8", *text8_args(two_replicas), "--steps=4",
                                 f"--output_dir={tmp_path}"])
    a = assert_same_training(two_replicas / "text8", tmp_path, rtol=1e-4)
    state = a["carried_state/.ATTRIBUTES/VARIABLE_VALUE"]
    assert state.shape == (8, 32) and np.abs(state).min(axis=1).max() > 0
    assert len(read_jsonl(tmp_path / "train_log.jsonl")) == 4


def test_braille_on_two_replicas_like_one_process(two_replicas, tmp_path):
    common.run_main(braille.main, ["braille", *BRAILLE_ARGS, f"--output_dir={tmp_path}"])
    assert_same_training(two_replicas / "braille", tmp_path, rtol=1e-4)


def test_train_step_sums_gradients_before_clipping_and_gathers_the_carry():
    """`make_train_step` on the default strategy: one SGD step with a
    clipped gradient and a carried state, against NumPy."""
    strategy = distribute.strategy("none")
    w = keras.Variable(np.array([[1.0], [-2.0]], np.float32))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w)
    optimizer = keras.optimizers.SGD(0.1, global_clipnorm=0.5)
    optimizer.build(model.trainable_variables)
    carry = tf.Variable(tf.zeros((4, 1)))

    def loss_fn(model, batch, training):
        x, h = batch
        out = model(x, training=training) + h
        return tf.reduce_mean(out ** 2), {"mean_out": tf.reduce_mean(out)}, out

    x = np.array([[1, 0], [0, 1], [1, 1], [2, -1]], np.float32)
    step = distribute.make_train_step(strategy, model, optimizer, loss_fn, carry=carry)
    out = step((x,))
    pred = x @ np.array([[1.0], [-2.0]])
    grad = 2 * x.T @ pred / len(x)
    grad *= min(1.0, 0.5 / np.linalg.norm(grad))
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), [[1.0], [-2.0]] - 0.1 * grad, rtol=1e-6)
    np.testing.assert_allclose(carry.numpy(), pred, rtol=1e-6)
    np.testing.assert_allclose(float(out["loss"]), np.mean(pred ** 2), rtol=1e-6)
    np.testing.assert_allclose(float(out["mean_out"]), np.mean(pred), rtol=1e-6)
    distribute.check_same_on_workers(strategy, 3, "the step")  # one replica: agrees


def compiled_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_fit_matches_keras_fit_without_distribution():
    """`distribute.fit` makes the same updates as Keras's own `fit`."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16).astype(np.int32)
    model = compiled_model()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    losses = distribute.fit(model, data, 2, distribute.strategy("none"))
    ref = compiled_model()
    history = ref.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert history.history["loss"][0] > 0
    for a, b in zip(model.weights, ref.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_split_batch_one_replica_and_short_dataset():
    s = distribute.strategy("none")
    (x,) = distribute.split_batch(s, (tf.range(6),))
    np.testing.assert_array_equal(x, np.arange(6))  # one replica: the whole batch
    with pytest.raises(ValueError, match="dataset"):
        distribute.fit(compiled_model(), [], 1, s)


def test_strategy_arguments():
    with pytest.raises(ValueError, match="kind"):
        distribute.strategy("tpu")
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
        assert distribute.output_dir("/x") == "/x/.workers/worker_1"
        # A strategy without a cluster makes this process the chief whatever TF_CONFIG says.
        assert distribute.is_chief(distribute.strategy("none"))
        assert distribute.output_dir("/x", distribute.strategy("none")) == "/x"
    finally:
        os.environ.pop("TF_CONFIG", None)
        if old is not None:
            os.environ["TF_CONFIG"] = old
