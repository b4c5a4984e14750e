// cmer_edge._native: the compiled core. One Bind* per area, defined in bind_<area>.cc.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "cmer_edge native core: fused CM-RoBERTa head ops on CPU and CUDA";
  cmer_edge::BindInfo(m);
  cmer_edge::BindOps(m);
  cmer_edge::BindHead(m);
}
