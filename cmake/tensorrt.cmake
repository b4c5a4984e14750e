# TensorRT is used from Python (the `tensorrt` package) to build and run engines; the C++ core does
# not link it. We only record whether its headers were visible at build time, for build_info().
set(CMER_EDGE_TENSORRT_SUMMARY OFF)
set(CMER_EDGE_TENSORRT_VERSION "")
find_path(CMER_EDGE_NVINFER_INCLUDE NvInferVersion.h
          HINTS ENV TENSORRT_ROOT ENV TensorRT_ROOT
          PATH_SUFFIXES include include/aarch64-linux-gnu include/x86_64-linux-gnu)
if(CMER_EDGE_NVINFER_INCLUDE)
  file(STRINGS "${CMER_EDGE_NVINFER_INCLUDE}/NvInferVersion.h" _cmer_edge_trt_lines
       REGEX "#define (NV_TENSORRT_MAJOR|NV_TENSORRT_MINOR|NV_TENSORRT_PATCH|TRT_MAJOR_ENTERPRISE|TRT_MINOR_ENTERPRISE|TRT_PATCH_ENTERPRISE) ")
  set(_cmer_edge_trt_parts "")
  foreach(_line IN LISTS _cmer_edge_trt_lines)
    if(_line MATCHES "#define [A-Z_]+ ([0-9]+)")
      list(APPEND _cmer_edge_trt_parts ${CMAKE_MATCH_1})
    endif()
  endforeach()
  list(LENGTH _cmer_edge_trt_parts _n)
  if(_n GREATER_EQUAL 3)
    list(SUBLIST _cmer_edge_trt_parts 0 3 _cmer_edge_trt_parts)
    string(JOIN "." CMER_EDGE_TENSORRT_VERSION ${_cmer_edge_trt_parts})
    set(CMER_EDGE_TENSORRT_SUMMARY ${CMER_EDGE_TENSORRT_VERSION})
  endif()
endif()
