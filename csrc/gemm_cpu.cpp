// CPU kernel of fastsac::mm(a, b) = a @ b for 2-D float tensors: the AVX-512 tiles of
// gemm_cpu_avx512.cpp where they pay (float32, an AVX-512 CPU, at least kMinCols columns),
// torch's own mm (MKL) otherwise. The update graph calls it for its hidden-layer products on CPU.
//
// Its thread count is fastsac's own setting (fastsac::_product_threads, 0: torch's), read at run
// time, not torch's global count: FastSAC's thread tuner changes it between updates without
// touching torch.get_num_threads(), which torch.compile guards on (every count would otherwise
// be another compiled entry of the same update).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "cpu_simd.h"

namespace fastsac {
namespace {

// Below this many output columns (a network's 1-wide value head, a small action head) the
// product is a matrix-vector one, where MKL's gemv is as fast and the tiles would waste lanes.
constexpr int64_t kMinCols = 16;
// Split the tiles across threads once a call has about 2^20 multiply-adds: a 128 x 128 x 128
// product does, a layer fed by a 3-wide observation does not.
constexpr int64_t kParallelMacs = int64_t{1} << 20;

std::atomic<int64_t> g_product_threads{0};

// Runs at::mm on `threads` threads and restores torch's count (MKL reads the global count).
at::Tensor mm_on_threads(const at::Tensor& a, const at::Tensor& b, int64_t threads) {
  const int64_t have = at::get_num_threads();
  if (threads <= 0 || threads == have || at::in_parallel_region()) return at::mm(a, b);
  struct Restore {
    int64_t n;
    ~Restore() { at::set_num_threads(static_cast<int>(n)); }
  } restore{have};
  at::set_num_threads(static_cast<int>(threads));
  return at::mm(a, b);
}

at::Tensor mm_cpu(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2, "fastsac::mm: 2-D inputs, got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.size(1) == b.size(0), "fastsac::mm: shapes ", a.sizes(), " and ", b.sizes(),
              " cannot be multiplied");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "fastsac::mm: both inputs need one dtype");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const bool tiles = a.scalar_type() == at::kFloat && active_simd() == Simd::kAvx512 &&
                     n >= kMinCols && m > 0 && k > 0;
  const int64_t wanted = g_product_threads.load(std::memory_order_relaxed);
  if (!tiles) return mm_on_threads(a, b, wanted);
  const at::Tensor bc = b.contiguous();
  at::Tensor c = at::empty({m, n}, a.options());
  const float* pa = a.const_data_ptr<float>();
  const float* pb = bc.const_data_ptr<float>();
  float* pc = c.mutable_data_ptr<float>();
  const int64_t sam = a.stride(0), sak = a.stride(1);
  const int64_t count = avx512::gemm_tiles(m, n);
  const int64_t tile_macs = std::max<int64_t>(1, m * n * k / count);
  const int64_t threads = wanted > 0 ? wanted : at::get_num_threads();
  // at most `threads` pieces: at::parallel_for makes one per grain
  const int64_t grain = std::max<int64_t>({int64_t{1}, kParallelMacs / 2 / tile_macs,
                                           (count + threads - 1) / threads});
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    avx512::gemm_f32_tiles(pa, sam, sak, pb, pc, m, n, k, begin, end);
  });
  return c;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("mm", &mm_cpu); }

TORCH_LIBRARY_FRAGMENT(fastsac, m) {
  // The thread count of fastsac::mm on CPU (0: torch's); returns the previous setting.
  m.def("_product_threads(int threads) -> int", [](int64_t threads) {
    TORCH_CHECK(threads >= 0, "_product_threads: a count >= 0, got ", threads);
    return g_product_threads.exchange(threads);
  });
}

}  // namespace fastsac
