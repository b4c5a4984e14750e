// Binding areas and the array checks they share. Bindings validate and convert; the core computes.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cmer_edge {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

void BindInfo(py::module_& m);
void BindOps(py::module_& m);
void BindHead(py::module_& m);

// "(2, 3, 4)" for error messages.
std::string ShapeString(const py::array& a);

// Throws ValueError "<name> must have shape (…), got (…)" unless `a` matches; -1 matches any size.
void CheckShape(const py::array& a, const char* name, const std::vector<int64_t>& expected);

// Throws ValueError naming the array and the first bad index if it holds NaN or Inf.
void CheckFinite(const FloatArray& a, const char* name);

// A real floating-point array (any float dtype, any memory order) as C-contiguous float32;
// ValueError naming the dtype and shape for anything else (ints, bools, complex, objects).
FloatArray ToFloatArray(const py::handle& obj, const char* name);

// An integer array as C-contiguous int32; ValueError naming the dtype and shape otherwise.
IntArray ToIntArray(const py::handle& obj, const char* name);

}  // namespace cmer_edge
