r"""The C kernel of ``train.fused_update``: compiled once per machine, cached, called by ctypes.

Two loops over lists of CPU tensors, given as raw pointers (no torch headers: the library
compiles in about a second, where a ``torch.utils.cpp_extension`` module takes 20 s, and
Inductor 8 s):

* ``sum_squares``: :math:`\sum_j g_j^2` of each gradient, bfloat16 or float32, accumulated in
  float32 lanes over blocks of 4,096 values and in float64 across blocks, in order;
* ``adam_update``: Adam (Kingma & Ba, 2015, Algorithm 1, in torch's form; AdamW's decoupled
  decay, Loshchilov & Hutter, 2019, Algorithm 2) on float32 parameters from bfloat16 or
  float32 gradients scaled by the clip factor :math:`c`, writing the parameter, both moments
  and, where given, the parameter rounded to bfloat16 (round to nearest even, as torch casts)
  in the same pass; with AVX-512 the copies are written 64 bytes at a time with non-temporal
  stores, which skip reading each line of the copy before it is overwritten (about a tenth of
  the pass, measured in docs/precision.md):

  .. math::
      g &= c\,\hat g \;(+\,\lambda\theta \text{ for Adam}),\qquad
      \theta \leftarrow \theta(1 - \eta\lambda) \text{ for AdamW},\\
      m &\leftarrow m + (1-\beta_1)(g - m),\qquad
      v \leftarrow \beta_2 v + (1-\beta_2) g^2,\\
      \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
      \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon},\qquad
      \hat\theta = \mathrm{bf16}(\theta).

Both loops are split across ``threads`` OpenMP threads (the libgomp torch loaded, by its
soname) and vectorised by the compiler (``-O3 -march=native``); neither result depends on the
number of threads (the update is elementwise, the blocks' sums are added in order). The
library is built with the C compiler of ``$CC`` (else ``cc``, ``gcc`` or ``clang``; without
OpenMP where it has none) into ``$HIEROT_KERNEL_CACHE`` (default ``~/.cache/hierot/kernels``),
named by a hash of the source, the compiler, the flags and the CPU, and reused by every later
run on the machine.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from hierot.errors import HierotError

SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float widen(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}
static inline uint16_t narrow(float f) {  /* round to nearest even; NaN stays NaN */
    uint32_t bits; memcpy(&bits, &f, 4);
    uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return f != f ? (uint16_t)0x7FC0 : (uint16_t)rounded;
}
#define BLOCK 4096

/* Each block's sum lands in its own slot, summed in order: the same result for any number of
   threads. Returns 0, or -1 when the slots cannot be allocated. */
int sum_squares(int n, const int64_t *numel, void *const *grad, const int *bf16,
                double *out, int threads) {
    for (int t = 0; t < n; t++) {
        int64_t size = numel[t], blocks = (size + BLOCK - 1) / BLOCK;
        double *part = malloc((blocks > 0 ? blocks : 1) * sizeof(double)), total = 0.0;
        if (!part) return -1;
        #pragma omp parallel for num_threads(threads) if(blocks > 16) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t lo = b * BLOCK, hi = lo + BLOCK < size ? lo + BLOCK : size;
            float acc = 0.0f;
            if (bf16[t]) {
                const uint16_t *g = (const uint16_t *)grad[t];
                #pragma omp simd reduction(+:acc)
                for (int64_t j = lo; j < hi; j++) { float x = widen(g[j]); acc += x * x; }
            } else {
                const float *g = (const float *)grad[t];
                #pragma omp simd reduction(+:acc)
                for (int64_t j = lo; j < hi; j++) acc += g[j] * g[j];
            }
            part[b] = acc;
        }
        for (int64_t b = 0; b < blocks; b++) total += part[b];
        out[t] = total;
        free(part);
    }
    return 0;
}

/* One tensor's update; GRAD(j) reads its gradient, OUT is the statement that stores x. */
#define ADAM_BODY(j, GRAD, OUT) {                                                     \
        float g = GRAD(j) * scale, x = p[j] * shrink;                                 \
        g += l2 * x;                                                                  \
        float mj = m[j] + one_b1 * (g - m[j]);                                        \
        float vj = b2 * v[j] + one_b2 * g * g;                                        \
        x -= step * mj / (sqrtf(vj) * inv_bc2 + eps);                                 \
        m[j] = mj; v[j] = vj; p[j] = x;                                               \
        OUT; }
#define ADAM_LOOP(GRAD, COPY)                                                         \
    _Pragma("omp parallel for simd num_threads(threads) if(size > 65536)")          \
    for (int64_t j = 0; j < size; j++) ADAM_BODY(j, GRAD, COPY(j, x))
#ifdef __AVX512F__
#include <immintrin.h>
#define CHUNK 32768
#define ADAM_LOOP_STREAMED(GRAD)                                                      \
    _Pragma("omp parallel for num_threads(threads) if(size > 65536) schedule(static)") \
    for (int64_t lo = 0; lo < size; lo += CHUNK) {                                    \
        int64_t hi = lo + CHUNK < size ? lo + CHUNK : size, j = lo;                   \
        for (; j < hi && ((uintptr_t)(c + j) & 63); j++) ADAM_BODY(j, GRAD, c[j] = narrow(x)) \
        for (; j + 32 <= hi; j += 32) {                                               \
            uint16_t low[32] __attribute__((aligned(64)));                            \
            _Pragma("omp simd")                                                       \
            for (int k = 0; k < 32; k++) ADAM_BODY(j + k, GRAD, low[k] = narrow(x))   \
            _mm512_stream_si512((__m512i *)(c + j), _mm512_load_si512((const void *)low)); \
        }                                                                             \
        for (; j < hi; j++) ADAM_BODY(j, GRAD, c[j] = narrow(x))                      \
        _mm_sfence();                                                                 \
    }
#else
#define ADAM_LOOP_STREAMED(GRAD) ADAM_LOOP(GRAD, TO_COPY)
#endif
#define LOW(j) widen(g16[j])
#define WIDE(j) g32[j]
#define TO_COPY(j, x) c[j] = narrow(x)
#define NO_COPY(j, x)

/* hyper[8 t ...]: lr / bias_correction1, 1 - beta1, beta2, 1 - beta2, eps,
   1 / sqrt(bias_correction2), Adam's L2 weight decay (0 for AdamW), AdamW's factor
   1 - lr weight_decay (1 for Adam) */
void adam_update(int n, const int64_t *numel, float *const *param, void *const *grad,
                 const int *bf16, float *const *exp_avg, float *const *exp_avg_sq,
                 uint16_t *const *copy, const double *hyper, float scale, int threads) {
    for (int t = 0; t < n; t++) {
        const double *h = hyper + 8 * t;
        const float step = h[0], one_b1 = h[1], b2 = h[2], one_b2 = h[3], eps = h[4];
        const float inv_bc2 = h[5], l2 = h[6], shrink = h[7];
        const int64_t size = numel[t];
        float *restrict p = param[t], *restrict m = exp_avg[t], *restrict v = exp_avg_sq[t];
        const uint16_t *restrict g16 = (const uint16_t *)grad[t];
        const float *restrict g32 = (const float *)grad[t];
        uint16_t *restrict c = copy[t];
        if (bf16[t] && c) { ADAM_LOOP_STREAMED(LOW) }
        else if (bf16[t]) { ADAM_LOOP(LOW, NO_COPY) }
        else if (c) { ADAM_LOOP_STREAMED(WIDE) }
        else { ADAM_LOOP(WIDE, NO_COPY) }
    }
}
"""

FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c11")


def compiler() -> str | None:
    """The C compiler used: ``$CC``, else the first of ``cc``, ``gcc``, ``clang`` found."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"])
    return next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)


def cache_dir() -> Path:
    """Where built libraries are kept: ``$HIEROT_KERNEL_CACHE`` or ``~/.cache/hierot/kernels``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hierot/kernels"
    return Path(os.environ.get("HIEROT_KERNEL_CACHE", default))


def library_path(cc: str) -> Path:
    """The cached library's path: a hash of the source, the compiler, the flags and the CPU."""
    key = "\n".join([SOURCE, cc, *FLAGS, platform.machine(), _cpu_model()])
    return cache_dir() / f"fused_update-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


@cache
def load() -> ctypes.CDLL:
    """The kernel library, built first if it is not in the cache (about a second)."""
    cc = compiler()
    if cc is None:
        raise HierotError("train.fused_update: needs a C compiler (cc, gcc or clang, or $CC) to "
                          "build its kernel; none was found: install one or drop the option")
    path = library_path(cc)
    if not path.exists():
        _build(cc, path)
    lib = ctypes.CDLL(str(path))
    lib.sum_squares.restype, lib.adam_update.restype = ctypes.c_int, None
    return lib


def _build(cc: str, path: Path) -> None:
    """Compile :data:`SOURCE` into ``path`` (written under a temporary name, then renamed, so a
    concurrent run never loads half a file); without OpenMP (one thread) where the compiler
    has none (Apple's clang)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source, built = Path(tmp, "kernel.c"), Path(tmp, path.name)
        source.write_text(SOURCE)
        for flags in (FLAGS, tuple(f for f in FLAGS if f != "-fopenmp")):
            done = subprocess.run([cc, *flags, str(source), "-o", str(built), "-lm"],
                                  check=False, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(built, path)
                return
        raise HierotError(f"train.fused_update: building its kernel with {cc} failed:\n"
                          f"{done.stderr.strip()[-2000:]}")


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line for line in text.splitlines() if line.startswith("flags")), text[:200])


__all__ = ["FLAGS", "SOURCE", "cache_dir", "compiler", "library_path", "load"]
