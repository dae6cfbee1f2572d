// ember/bindings/common: the checks every binding makes before it calls a kernel.
//
// A binding (1) finds the dtype (float32 or float64; anything else is a TypeError naming the op
// and the argument), (2) checks every array is C-contiguous and of that same dtype, (3) validates
// shapes through core/shapes (ValueError naming the op, the argument, expected and got),
// (4) allocates outputs with the GIL held, then (5) releases the GIL around the kernel only.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/shapes.h"

namespace ember::bind {

namespace py = pybind11;

enum class DType { f32, f64 };

inline const char* dtype_name(DType d) { return d == DType::f32 ? "float32" : "float64"; }

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline Shape shape_of(const py::array& a) {
  Shape s(a.ndim());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s[i] = a.shape(i);
  return s;
}

inline std::string shape_str(const py::array& a) { return ember::shape_str(shape_of(a)); }

[[noreturn]] inline void type_error(const std::string& m) { throw py::type_error(m); }
[[noreturn]] inline void value_error(const std::string& m) { throw py::value_error(m); }
[[noreturn]] inline void index_error(const std::string& m) { throw py::index_error(m); }

inline void check_contiguous(const char* op, const char* name, const py::array& a) {
  if (!(a.flags() & py::array::c_style))
    value_error(std::string(op) + ": argument '" + name + "' must be C-contiguous");
}

// The float dtype of the first float argument; every other float argument must match it.
inline DType float_dtype(const char* op, const char* name, const py::array& a) {
  DType d;
  if (a.dtype().is(py::dtype::of<float>()))
    d = DType::f32;
  else if (a.dtype().is(py::dtype::of<double>()))
    d = DType::f64;
  else
    type_error(std::string(op) + ": argument '" + name + "' must be float32 or float64, got " +
               dtype_str(a));
  check_contiguous(op, name, a);
  return d;
}

inline void check_float(const char* op, const char* name, const py::array& a, DType d) {
  DType got;
  if (a.dtype().is(py::dtype::of<float>())) got = DType::f32;
  else if (a.dtype().is(py::dtype::of<double>())) got = DType::f64;
  else
    type_error(std::string(op) + ": argument '" + name + "' must be " + dtype_name(d) + ", got " +
               dtype_str(a));
  if (got != d)
    type_error(std::string(op) + ": argument '" + name + "' has dtype " + dtype_name(got) +
               " but the input is " + dtype_name(d) + "; all float arguments must share a dtype");
  check_contiguous(op, name, a);
}

// An integer index array (class targets, embedding ids): int64 or int32, C-contiguous.
inline py::array_t<int64_t, py::array::c_style> check_index(const char* op, const char* name,
                                                            const py::array& a) {
  if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    type_error(std::string(op) + ": argument '" + name + "' must hold integers, got " +
               dtype_str(a));
  return py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
}

template <class T>
py::array_t<T> empty(const Shape& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

template <class T>
py::array_t<T> zeros(const Shape& shape) {
  auto a = empty<T>(shape);
  std::fill_n(a.mutable_data(), a.size(), T(0));
  return a;
}

template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// Calls f(T{}) with T = float or double by dtype: `dispatch(d, [&](auto tag) { using T = ...; })`.
template <class F>
auto dispatch(DType d, F&& f) {
  if (d == DType::f32) return f(float{});
  return f(double{});
}

}  // namespace ember::bind
