"""cpu/parallel_for.h's DynamicFor: every unit once, helpers bounded, the
second pool used only when the first does not start a helper.

The header is framework-free, so the checks are a small C++ program compiled
here with g++ against it; a Schedule's pools are plain std::threads or a
queue run only after the call returns (a pool whose threads are all busy).
"""

import os
import shutil
import subprocess
import sys

import pytest

HEADER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "custom_ops")

PROGRAM = r"""
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "cpu/parallel_for.h"

using keras_bandrnn::cpu::DynamicFor;
using keras_bandrnn::cpu::Runner;
using keras_bandrnn::cpu::Schedule;

// A pool that starts each closure on a thread of its own.
struct Threads {
  std::vector<std::thread> threads;
  std::atomic<int> offered{0};
  Runner runner() {
    return [this](std::function<void()> c) { ++offered; threads.emplace_back(std::move(c)); };
  }
  void Join() { for (auto& t : threads) t.join(); threads.clear(); }
};

// A pool whose threads are all busy: its closures run when Drain() is called.
struct Busy {
  std::vector<std::function<void()>> queue;
  Runner runner() { return [this](std::function<void()> c) { queue.push_back(std::move(c)); }; }
  void Drain() { for (auto& c : queue) c(); queue.clear(); }
};

struct Record {
  std::mutex mu;
  std::vector<int> count;
  std::set<std::thread::id> ids;
  explicit Record(int units) : count(units, 0) {}
  std::function<void(int64_t)> fn(int sleep_us) {
    return [this, sleep_us](int64_t u) {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      std::lock_guard<std::mutex> lock(mu);
      ++count[u];
      ids.insert(std::this_thread::get_id());
    };
  }
  bool Once() const { for (int c : count) if (c != 1) return false; return true; }
};

#define CHECK(cond) do { if (!(cond)) { std::printf("FAIL line %d: %s\n", __LINE__, #cond); return 1; } } while (0)

int main() {
  {  // first busy, second has threads: the second pool's helper takes part.
    Busy first; Threads second; Record rec(16);
    DynamicFor(Schedule{first.runner(), second.runner()}, 2, 16, rec.fn(2000));
    CHECK(rec.Once());
    CHECK(second.offered == 1);
    CHECK(rec.ids.size() == 2);
    second.Join();
    first.Drain();  // the first pool's late helper finds nothing to do
    CHECK(rec.Once());
  }
  {  // first starts its helpers: the second pool is offered none.
    Threads first, second; Record rec(16);
    DynamicFor(Schedule{first.runner(), second.runner()}, 3, 16, rec.fn(20000));
    CHECK(rec.Once());
    CHECK(second.offered == 0);
    CHECK(rec.ids.size() == 3);
    first.Join();
  }
  {  // a first-pool helper that starts after the second pool's took its
     // place: at most threads - 1 helpers take units.
    Threads first, second; Record rec(16);
    Runner delayed = [&](std::function<void()> c) {
      first.runner()([c] { std::this_thread::sleep_for(std::chrono::milliseconds(8)); c(); });
    };
    DynamicFor(Schedule{delayed, second.runner()}, 2, 16, rec.fn(2000));
    CHECK(rec.Once());
    CHECK(second.offered == 1);
    CHECK(rec.ids.size() == 2);
    first.Join(); second.Join();
  }
  {  // no second pool and a busy first: the caller takes every unit.
    Busy first; Record rec(5);
    DynamicFor(Schedule{first.runner(), nullptr}, 4, 5, rec.fn(0));
    CHECK(rec.Once());
    CHECK(rec.ids.size() == 1);
    first.Drain();
    CHECK(rec.Once());
  }
  {  // one thread, or no pool: serial, nothing scheduled.
    Threads first; Record rec(7);
    DynamicFor(Schedule{first.runner(), nullptr}, 1, 7, rec.fn(0));
    DynamicFor(Schedule{}, 4, 0, rec.fn(0));
    CHECK(rec.Once());
    CHECK(first.offered == 0);
  }
  std::printf("OK\n");
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_dynamic_for(tmp_path):
    src = tmp_path / "dynamic_for.cc"
    src.write_text(PROGRAM)
    exe = tmp_path / "dynamic_for"
    subprocess.run(["g++", "-std=c++17", "-O1", "-pthread", f"-I{HEADER_DIR}", str(src), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stdout + out.stderr


# The ops in a tf.function with one inter-op thread: the runner's only thread
# is the one running the op, so its helpers go through the intra-op pool
# (kernels/cpu_parallel.h). Sizes large enough to be split over two threads.
OPS_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(2)
from keras_bandrnn import _lib
from keras_bandrnn.ops import band_matmul, block_sparse_matmul
from tests import references
assert _lib.fallback_reason() is None, _lib.fallback_reason()
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 1024))
w = rng.standard_normal((1024, 1024))
mask = rng.random((64, 32)) < 0.5
diags = rng.standard_normal((2048, 65))
xb = rng.standard_normal((64, 2048))

@tf.function
def run(x, w, mask, diags, xb):
    return block_sparse_matmul(x, w, mask, 32), band_matmul(xb, diags, 32, 32)

y, yb = run(tf.constant(x), tf.constant(w), tf.constant(mask), tf.constant(diags), tf.constant(xb))
ref = np.where(np.repeat(mask, 32, axis=1), x @ w, 0.0)
np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
np.testing.assert_allclose(yb.numpy(), references.band_matmul(xb, diags, 32, 32), rtol=1e-10, atol=1e-10)
print("OK")
"""


def test_ops_with_one_inter_op_thread():
    out = subprocess.run([sys.executable, "-c", OPS_SCRIPT], capture_output=True, text=True,
                         timeout=300, cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr[-3000:]
