// upfirdn2d: zero-insertion upsampling, padding (negative = crop), FIR filter (a true convolution),
// downsampling, computed directly: one thread per output pixel sums the filter taps that land
// on real (not inserted-zero) input pixels. Unverified on a GPU: written and compiled without one;
// build.py checks it against the reference before use.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

namespace {

struct Geometry {
  int64_t planes, in_h, in_w, out_h, out_w, filter_h, filter_w, up, down, pad_left, pad_top;
};

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ f,
                                 scalar_t* __restrict__ y, Geometry g, float gain) {
  const int64_t count = g.planes * g.out_h * g.out_w;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const int64_t ox = i % g.out_w;
    const int64_t oy = (i / g.out_w) % g.out_h;
    const int64_t plane = i / (g.out_w * g.out_h);
    const scalar_t* input = x + plane * g.in_h * g.in_w;
    float sum = 0.f;
    for (int64_t fy = 0; fy < g.filter_h; ++fy) {
      // Position in the zero-inserted (upsampled) signal before padding.
      const int64_t uy = oy * g.down + fy - g.pad_top;
      if (uy < 0 || uy >= g.in_h * g.up || uy % g.up != 0) continue;
      const int64_t iy = uy / g.up;
      for (int64_t fx = 0; fx < g.filter_w; ++fx) {
        const int64_t ux = ox * g.down + fx - g.pad_left;
        if (ux < 0 || ux >= g.in_w * g.up || ux % g.up != 0) continue;
        const int64_t ix = ux / g.up;
        // Convolution: the filter is applied flipped.
        const float tap = static_cast<float>(f[(g.filter_h - 1 - fy) * g.filter_w + (g.filter_w - 1 - fx)]);
        sum += static_cast<float>(input[iy * g.in_w + ix]) * tap;
      }
    }
    y[i] = static_cast<scalar_t>(sum * gain);
  }
}

}  // namespace

at::Tensor upfirdn2d_cuda(at::Tensor x, at::Tensor f, int64_t up, int64_t down, int64_t pad_left,
                             int64_t pad_right, int64_t pad_top, int64_t pad_bottom, double gain) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  Geometry g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.filter_h = f.size(0);
  g.filter_w = f.size(1);
  g.up = up;
  g.down = down;
  g.pad_left = pad_left;
  g.pad_top = pad_top;
  const int64_t padded_h = g.in_h * up + pad_top + pad_bottom;
  const int64_t padded_w = g.in_w * up + pad_left + pad_right;
  TORCH_CHECK(padded_h >= g.filter_h && padded_w >= g.filter_w, "upfirdn2d: the filter is larger than the padded input");
  g.out_h = (padded_h - g.filter_h) / down + 1;
  g.out_w = (padded_w - g.filter_w) / down + 1;
  auto y = at::empty({x.size(0), x.size(1), g.out_h, g.out_w}, x.options());
  const int64_t count = y.numel();
  if (count == 0) return y;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((count + threads - 1) / threads, 65535 * 8));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d_cuda", [&] {
    upfirdn2d_kernel<scalar_t><<<blocks, threads, 0, stream>>>(x.data_ptr<scalar_t>(), f.data_ptr<scalar_t>(),
                                                              y.data_ptr<scalar_t>(), g, static_cast<float>(gain));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}
