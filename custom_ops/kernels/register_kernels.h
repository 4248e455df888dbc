// Kernel registration shared by the op files: the OpKernel class template
// KERNEL<Device, T> of op OP for float, double, bfloat16 and half, on the CPU
// and, in CUDA builds, on the GPU (whose functors the op's _gpu.cu.cc defines
// and instantiates for the same four types).
#ifndef KERAS_BANDRNN_KERNELS_REGISTER_KERNELS_H_
#define KERAS_BANDRNN_KERNELS_REGISTER_KERNELS_H_

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"

#define KBR_REGISTER_KERNEL_T(OP, KERNEL, DEVICE_TYPE, DEVICE, T)                       \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name(OP).Device(::tensorflow::DEVICE_TYPE).TypeConstraint<T>("T"), KERNEL<DEVICE, T>)

#define KBR_REGISTER_KERNEL_TYPES(OP, KERNEL, DEVICE_TYPE, DEVICE)          \
  KBR_REGISTER_KERNEL_T(OP, KERNEL, DEVICE_TYPE, DEVICE, float);            \
  KBR_REGISTER_KERNEL_T(OP, KERNEL, DEVICE_TYPE, DEVICE, double);           \
  KBR_REGISTER_KERNEL_T(OP, KERNEL, DEVICE_TYPE, DEVICE, Eigen::bfloat16);  \
  KBR_REGISTER_KERNEL_T(OP, KERNEL, DEVICE_TYPE, DEVICE, Eigen::half)

#if GOOGLE_CUDA
#define KBR_REGISTER_KERNELS(OP, KERNEL)                                        \
  KBR_REGISTER_KERNEL_TYPES(OP, KERNEL, DEVICE_CPU, Eigen::ThreadPoolDevice);   \
  KBR_REGISTER_KERNEL_TYPES(OP, KERNEL, DEVICE_GPU, Eigen::GpuDevice)
#else
#define KBR_REGISTER_KERNELS(OP, KERNEL) \
  KBR_REGISTER_KERNEL_TYPES(OP, KERNEL, DEVICE_CPU, Eigen::ThreadPoolDevice)
#endif  // GOOGLE_CUDA

#endif  // KERAS_BANDRNN_KERNELS_REGISTER_KERNELS_H_
