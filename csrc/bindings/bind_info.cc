// build_info(), cuda_available() and the shared array checks.
#include <cmath>

#include "bindings/bindings.h"
#include "core/device.h"

namespace cmer_edge {

std::string ShapeString(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (i + 1 < a.ndim() || a.ndim() == 1) s += ",";
    if (i + 1 < a.ndim()) s += " ";
  }
  return s + ")";
}

void CheckShape(const py::array& a, const char* name, const std::vector<int64_t>& expected) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i) {
    ok = expected[i] < 0 || a.shape(i) == expected[i];
  }
  if (ok) return;
  std::string want = "(";
  for (size_t i = 0; i < expected.size(); ++i) {
    want += expected[i] < 0 ? std::string("*") : std::to_string(expected[i]);
    if (i + 1 < expected.size() || expected.size() == 1) want += ",";
    if (i + 1 < expected.size()) want += " ";
  }
  throw py::value_error(std::string(name) + " must have shape " + want + ")" + ", got " + ShapeString(a));
}

void CheckFinite(const FloatArray& a, const char* name) {
  const float* p = a.data();
  for (py::ssize_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(p[i])) {
      throw py::value_error(std::string(name) + " holds a non-finite value (" + std::to_string(p[i]) +
                            ") at flat index " + std::to_string(i) + " of shape " + ShapeString(a));
    }
  }
}

namespace {

py::array AsArray(const py::handle& obj, const char* name) {
  py::array a = py::array::ensure(obj);  // null (error cleared) when numpy cannot convert it
  if (!a) {
    throw py::value_error(std::string(name) + " must be array-like, got " +
                          std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return a;
}

std::string DtypeName(const py::array& a) { return std::string(py::str(a.dtype())); }

}  // namespace

FloatArray ToFloatArray(const py::handle& obj, const char* name) {
  const py::array a = AsArray(obj, name);
  if (a.dtype().kind() != 'f') {
    throw py::value_error(std::string(name) + " must be a floating-point array, got dtype " + DtypeName(a) +
                          " with shape " + ShapeString(a));
  }
  return FloatArray::ensure(a);
}

IntArray ToIntArray(const py::handle& obj, const char* name) {
  const py::array a = AsArray(obj, name);
  if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') {
    throw py::value_error(std::string(name) + " must be an integer array, got dtype " + DtypeName(a) +
                          " with shape " + ShapeString(a));
  }
  return IntArray::ensure(a);
}

void BindInfo(py::module_& m) {
  m.def(
      "build_info",
      []() {
        py::dict info;
        info["version"] = CMER_EDGE_VERSION;
        info["compiler"] = CMER_EDGE_CXX_COMPILER;
        info["cuda"] = CudaCompiled();
#ifdef CMER_EDGE_WITH_CUDA
        info["cuda_arch"] = CMER_EDGE_CUDA_ARCH;
        info["cuda_compiler"] = CMER_EDGE_CUDA_COMPILER;
#else
        info["cuda_arch"] = py::none();
        info["cuda_compiler"] = py::none();
#endif
        const std::string trt = CMER_EDGE_TENSORRT_VERSION;
        info["tensorrt"] = trt.empty() ? py::object(py::none()) : py::object(py::str(trt));
        return info;
      },
      "What this build contains: version, compiler, cuda (bool), cuda_arch, cuda_compiler, "
      "tensorrt (headers version seen at build time, or None).");
  m.def("cuda_available", &CudaAvailable,
        "True when the CUDA kernels are built in and a CUDA device is usable now.");
}

}  // namespace cmer_edge
