// The op schemas of the fastsac library and the Python module stub that loads them.
// Kernels live in tanh_normal_cpu.cpp, polyak_cpu.cpp (CPU) and cuda/ (CUDA); fake kernels and
// autograd are registered from Python in fastsac/ops.py.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// `import fastsac._C` only needs to load this shared library so that the static TORCH_LIBRARY
// registrations below run; the module itself exposes nothing.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(fastsac, m) {
  m.def(
      "tanh_normal(Tensor mean_raw, Tensor log_std_raw, Tensor eps, float log_std_min, "
      "float log_std_max) -> (Tensor, Tensor)");
  m.def(
      "tanh_normal_backward(Tensor grad_action, Tensor grad_log_prob, Tensor mean_raw, "
      "Tensor log_std_raw, Tensor eps, float log_std_min, float log_std_max) -> (Tensor, Tensor)");
  m.def("polyak_(Tensor(a!)[] target, Tensor[] source, float tau) -> ()");
}
