"""Custom ops of StyleGAN2 and StyleGAN3: a PyTorch reference for each, and a CUDA extension built in the background."""
from .bias_act import bias_act, bias_act_reference
from .filtered_lrelu import filtered_lrelu, filtered_lrelu_reference
from .build import cuda_ops_status, start_cuda_ops_build
from .upfirdn2d import setup_filter, upfirdn2d, upfirdn2d_reference, upsample2d

__all__ = [
    "bias_act", "bias_act_reference", "cuda_ops_status", "filtered_lrelu", "filtered_lrelu_reference",
    "setup_filter", "start_cuda_ops_build",
    "upfirdn2d", "upfirdn2d_reference", "upsample2d",
]
