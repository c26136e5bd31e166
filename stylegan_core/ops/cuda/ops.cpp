// Python bindings and argument checks of the StyleGAN2 CUDA ops (bias_act, upfirdn2d).
// The PyTorch references in bias_act.py / upfirdn2d.py define the results; build.py compares
// both once after building. Unverified on a GPU: written and compiled without one.
#include <torch/extension.h>

torch::Tensor bias_act_cuda(torch::Tensor x, torch::Tensor bias, torch::Tensor ref, int64_t act, double alpha,
                            double gain, double clamp, int64_t dim, bool grad);
torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t pad_left,
                             int64_t pad_right, int64_t pad_top, int64_t pad_bottom, double gain);

// grad == false: y = clamp(act(x + bias) * gain).  grad == true: x is dL/dy, ref is the forward
// output y, and the result is dL/d(x + bias) (lrelu slope read from the sign of y, zero where clamped).
static torch::Tensor bias_act(torch::Tensor x, torch::Tensor bias, torch::Tensor ref, int64_t act, double alpha,
                              double gain, double clamp, int64_t dim, bool grad) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "bias_act: x must be a contiguous CUDA tensor");
  TORCH_CHECK(act == 0 || act == 1, "bias_act: act must be 0 (linear) or 1 (lrelu)");
  TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
  TORCH_CHECK(x.numel() < (int64_t(1) << 40), "bias_act: tensor too large");
  if (bias.numel() > 0) {
    TORCH_CHECK(!grad, "bias_act: the gradient pass takes no bias");
    TORCH_CHECK(bias.is_cuda() && bias.is_contiguous() && bias.dim() == 1 && bias.scalar_type() == x.scalar_type(),
                "bias_act: bias must be a contiguous 1-D CUDA tensor of x's dtype");
    TORCH_CHECK(bias.size(0) == x.size(dim), "bias_act: bias length must match x.size(dim)");
  }
  if (grad) {
    TORCH_CHECK(ref.is_cuda() && ref.is_contiguous() && ref.sizes() == x.sizes() &&
                ref.scalar_type() == x.scalar_type(), "bias_act: ref must be the forward output, shaped like x");
  }
  return bias_act_cuda(x, bias, ref, act, alpha, gain, clamp, dim, grad);
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t pad_left,
                               int64_t pad_right, int64_t pad_top, int64_t pad_bottom, double gain) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous() && x.dim() == 4, "upfirdn2d: x must be a contiguous 4-D CUDA tensor");
  TORCH_CHECK(f.is_cuda() && f.is_contiguous() && f.dim() == 2 && f.scalar_type() == x.scalar_type(),
              "upfirdn2d: f must be a contiguous 2-D CUDA tensor of x's dtype");
  TORCH_CHECK(up >= 1 && down >= 1, "upfirdn2d: up and down must be >= 1");
  return upfirdn2d_cuda(x, f, up, down, pad_left, pad_right, pad_top, pad_bottom, gain);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act, "bias + activation + gain + clamp, or its input gradient (CUDA)");
  m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (CUDA)");
}
