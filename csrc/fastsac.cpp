// The op schemas of the fastsac library and the Python module stub that loads them.
// Kernels live in csrc/*_cpu.cpp (CPU) and cuda/ (CUDA); fake kernels and autograd are
// registered from Python in fastsac/ops.py.
#include <Python.h>
#include <torch/library.h>

#include "cpu_simd.h"

extern "C" {
// `import fastsac._C` only needs to load this shared library so that the static TORCH_LIBRARY
// registrations below run; the module itself exposes nothing.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(fastsac, m) {
  // tanh_mean: the notebook's head (SAC v1) squashes the mean; SB3's and CleanRL's (v2) do not
  m.def(
      "tanh_normal(Tensor mean_raw, Tensor log_std_raw, Tensor eps, float log_std_min, "
      "float log_std_max, bool tanh_mean=True) -> (Tensor, Tensor)");
  m.def(
      "tanh_normal_backward(Tensor grad_action, Tensor grad_log_prob, Tensor mean_raw, "
      "Tensor log_std_raw, Tensor eps, float log_std_min, float log_std_max, "
      "bool tanh_mean=True) -> (Tensor, Tensor)");
  m.def("polyak_(Tensor(a!)[] target, Tensor[] source, float tau) -> ()");
  // one Adam step of a flat buffer, settings = [lr, beta1, beta2, eps, weight_decay] (adam_cpu.cpp)
  m.def(
      "adam_(Tensor(a!) param, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq, Tensor(d!) steps, "
      "Tensor[] grads, Tensor settings) -> ()");
  // a @ b for the update graph's hidden layers on CPU (gemm_cpu.cpp)
  m.def("mm(Tensor a, Tensor b) -> Tensor");
  // the actor's action for states on CPU, for select_action (policy_cpu.cpp); eps None: the
  // deterministic action (the squashed mean)
  m.def(
      "policy_action(Tensor state, Tensor[] actor, Tensor? eps, float log_std_min, "
      "float log_std_max, bool tanh_mean=True) -> Tensor");
  // Which SIMD build the float32 CPU kernels run (cpu_simd.h); "" asks without changing it.
  m.def("_cpu_simd(str request) -> str", [](std::string request) {
    return fastsac::cpu_simd(request);
  });
}
